"""The canary gate on the same events (issue 13): a bad and a good candidate at a 10 % share.

Events are generated transactions in batches of 256, routed by the real TierRouter (stable
1.0.0, candidate paired on its sticky key share, the gate of pipeline/tiers/canary.py with its
defaults), the state in an in-memory stand-in for Redis. Reported per candidate: the decision,
after how many events and canary pairs, how many requests the candidate served before it, and
the gate's numbers. No Kafka. Run: `python -m bench.tiers_canary [--json F]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.config import REPO_ROOT


class _Redis:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def call(self, operation: Any) -> Any:
        return operation(self)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.data[key] = value
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tiers_canary", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--share", type=float, default=10.0)
    parser.add_argument("--max-events", type=int, default=60_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out = {c: run(args, c) for c in ("1.0.0-bad.1", "1.0.0-candidate.1")}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def run(args: argparse.Namespace, candidate: str) -> dict[str, Any]:
    from pipeline.core.registry import get_plugin
    from pipeline.models.runtime import load_model
    from pipeline.streams.fraud.features import build_features
    from pipeline.streams.fraud.generator import TransactionGenerator
    from pipeline.tiers.canary import RUNNING, Canary, CanaryStore, GateRule
    from pipeline.tiers.cascade import TierRouter
    from pipeline.tiers.policy import Canary as CanarySpec
    from pipeline.tiers.policy import RoutingPolicy

    plugin = get_plugin("fraud")
    models = {v: load_model(args.models_dir / "fraud" / v) for v in ("1.0.0", candidate)}
    policy = RoutingPolicy("1.0.0", canary=CanarySpec(candidate, args.share), digest="bench")

    class Fixed:
        def current(self) -> RoutingPolicy:
            return policy

    router = TierRouter(models["1.0.0"], models.__getitem__, plugin.head,
                        lambda m, x: m.predict(x),
                        canary=Canary("fraud", CanaryStore(_Redis(), "bench:")))  # fmt: skip
    router.watcher = Fixed()  # type: ignore[assignment]
    records = TransactionGenerator(seed=77).generate(args.max_events).records
    matrix = build_features(records).matrix
    keys = [r["card_id"] for r in records]
    events = 0
    for start in range(0, len(records), 256):
        router.route(matrix[start : start + 256], keys[start : start + 256])
        events = min(start + 256, len(records))
        state = router.canary.state
        if state is not None and state.state != RUNNING:
            break
    state = router.canary.state
    assert state is not None
    return {
        "share_percent": args.share,
        "decision": state.state,
        "events_until_decision": events,
        "canary_pairs_until_decision": state.gate.pairs,
        "served_by_candidate_before_decision": state.served_by_candidate,
        "rule": vars(GateRule()),
        "gate": state.gate.summary(),
        "verdict": vars(state.gate.verdict()),
    }


if __name__ == "__main__":
    sys.exit(main())
