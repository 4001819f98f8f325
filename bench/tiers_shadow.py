"""What a shadow version costs the serving path (issue 13): serving throughput of the same
batches with and without a shadow as heavy as the primary, on the same worker process.

The serving path is the scoring handler's four stages on one thread (decode, validate, features,
model, encode, deliver to a no-op), over pre-encoded batches of real fraud requests; the shadow
(default 1.0.0-candidate.1, a gradient-boosted model like 1.0.0) scores every delivered batch on
its own thread and encodes its ShadowResult records (published to a no-op). Configurations run
interleaved (`--repeats` rounds), medians kept:

- `no_policy`: today's scorer, no tiers (the benchmarked path);
- `policy`: a routing policy with only a primary (the router's path, no shadow);
- `shadow`: the same policy with the shadow version.

Reported: events/s of each, the shadow's overhead on serving (1 - shadow/policy), and the
shadow's coverage (batches it scored vs dropped because its queue was full). No Kafka.
Run: `python -m bench.tiers_shadow [--batches N] [--json F]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tiers_shadow", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--primary", default="1.0.0")
    parser.add_argument("--shadow", default="1.0.0-candidate.1")
    parser.add_argument("--batches", type=int, default=24, help="batches of 256 per pass")
    parser.add_argument("--repeats", type=int, default=12, help="rounds (median kept)")
    parser.add_argument(
        "--max-share", type=float, help="cap the shadow thread's share of wall time (0-1]"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.codec import AvroSerializer, SchemaCatalog
    from pipeline.codec.columns import ColumnEncoder
    from pipeline.codec.registry import LocalRegistry
    from pipeline.core.batch import Batch
    from pipeline.core.registry import get_plugin, stream_topics
    from pipeline.models.runtime import load_model
    from pipeline.scoring import BatchScorer, InboundMessage
    from pipeline.scoring.handler import ScoringHandler
    from pipeline.scoring.model_calls import ModelCaller
    from pipeline.streams.fraud.generator import TransactionGenerator
    from pipeline.tiers.cascade import TierRouter
    from pipeline.tiers.policy import RoutingPolicy
    from pipeline.tiers.shadow import ShadowScorer, after_delivery

    registry = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
    plugin, spec = get_plugin("fraud"), stream_topics("fraud")
    encode = AvroSerializer(registry, registry.catalog.latest("fraud_request"), spec.requests)
    records = TransactionGenerator(seed=99).generate(256 * args.batches).records
    messages = [
        InboundMessage(spec.requests, 0, i, 1_795_400_000_000, r["card_id"].encode(),
                       encode(r), [("request_id", r["request_id"].encode())])
        for i, r in enumerate(records)
    ]  # fmt: skip
    batches = [messages[i : i + 256] for i in range(0, len(messages), 256)]
    models = {v: load_model(args.models_dir / "fraud" / v) for v in {args.primary, args.shadow}}
    primary = models[args.primary]

    def no_op(outbound: Any) -> None:
        return None

    def handler_for(shadow_versions: tuple[str, ...] | None) -> tuple[Any, Any]:
        if shadow_versions is None:
            scorer = BatchScorer(plugin, spec, primary, registry, worker_id="bench")
            return ScoringHandler(scorer, no_op, 30.0, 0), None
        policy = RoutingPolicy(args.primary, shadow=shadow_versions, digest="bench")

        class Fixed:
            def current(self) -> RoutingPolicy:
                return policy

        # the model calls as the worker makes them: a pool thread, a timeout
        router = TierRouter(primary, models.__getitem__, plugin.head, ModelCaller(30.0, 0))
        router.watcher = Fixed()  # type: ignore[assignment]
        shadow = ShadowScorer(
            lambda: policy.shadow, router.tier,
            ColumnEncoder(registry, registry.catalog.latest("shadow_result"), spec.shadow),
            spec.shadow, no_op, "fraud", "card_id", max_share=args.max_share,
        )  # fmt: skip
        scorer = BatchScorer(plugin, spec, primary, registry, worker_id="bench", router=router,
                             shadow=shadow)  # fmt: skip
        return ScoringHandler(scorer, after_delivery(no_op), 30.0, 0), shadow

    configs = {"no_policy": None, "policy": (), "shadow": (args.shadow,)}
    handlers = {name: handler_for(v) for name, v in configs.items()}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    ratios: list[float] = []  # shadow / the mean of the policy passes before and after it
    drain_s: list[float] = []
    for handler, _ in handlers.values():  # warm-up pass each
        for i, b in enumerate(batches[:5]):
            handler.handle(Batch(i, b, "full", 0.0, 0.0, {}))
    shadow_scorer = handlers["shadow"][1]
    shadow_scorer.drain()
    base = dict(vars(shadow_scorer.stats))

    def one_pass(name: str) -> float:
        handler, shadow = handlers[name]
        started = time.perf_counter()
        for i, b in enumerate(batches):
            handler.handle(Batch(i, b, "full", 0.0, 0.0, {}))
        rate = len(messages) / (time.perf_counter() - started)
        rates[name].append(rate)
        if shadow is not None:  # its backlog is not left to slow the next pass (not timed)
            t = time.perf_counter()
            shadow.drain(60)
            drain_s.append(time.perf_counter() - t)
        return rate

    for _ in range(args.repeats):  # no_policy, policy, shadow, policy: paired and interleaved
        one_pass("no_policy")
        before = one_pass("policy")
        with_shadow = one_pass("shadow")
        after = one_pass("policy")
        ratios.append(with_shadow / ((before + after) / 2))
    stats = vars(shadow_scorer.stats)
    submitted = stats["submitted"] - base["submitted"]
    dropped = stats["dropped"] - base["dropped"]
    median = {k: float(np.median(v)) for k, v in rates.items()}
    return {
        "events_per_pass": len(messages),
        "batch_size": 256,
        "primary": args.primary,
        "shadow_version": args.shadow,
        "events_per_s_median": {k: round(v) for k, v in median.items()},
        "events_per_s_all": {k: [round(x) for x in v] for k, v in rates.items()},
        "shadow_overhead": round(1 - float(np.median(ratios)), 4),
        "shadow_overhead_per_round": [round(1 - r, 3) for r in ratios],
        "max_share": args.max_share,
        "policy_overhead_vs_no_policy": round(1 - median["policy"] / median["no_policy"], 4),
        "shadow_coverage": round((submitted - dropped) / max(submitted, 1), 4),
        "shadow_batches": {
            "submitted": submitted,
            "dropped": dropped,
            "failures": stats["failures"],
        },
        "shadow_drain_after_pass_s_max": round(max(drain_s), 3) if drain_s else 0.0,
        "target_overhead_lt_0.05": 1 - float(np.median(ratios)) < 0.05,
    }


if __name__ == "__main__":
    sys.exit(main())
