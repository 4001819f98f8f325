"""The docs stream's throughput and batching, as ratios to same-run baselines (issue 11).

Parts (`--only`, default all): `bare`, the docs pipeline's unavoidable work in one loop, no
Kafka (bench/docs_models.py); `pipeline`, the real worker draining a backlog of the same
documents (bench/docs_pipeline.py); `batching`, the model on the same token rows batched by
length under the token budget vs FIFO groups of rows; `fraud`, the fraud worker's p99 at a
fixed rate alone and while a docs worker drains a backlog (bench/docs_fraud.py). The stack must
be up (`inferstream stack up`). Run: `python -m bench.docs_rate [flags]` (`--help`).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

from pipeline.cli import Parser, non_negative_int, positive_float, positive_int
from pipeline.errors import InferstreamError

PROG = "python -m bench.docs_rate"
PARTS = ("bare", "pipeline", "batching", "fraud")


def share(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def parts(text: str) -> str:
    """argparse type: a comma list of PARTS."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items or any(x not in PARTS for x in items):
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(PARTS)}, got {text!r}"
        )
    return ",".join(items)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--docs",
        type=positive_int,
        default=400,
        help="documents for the pipeline and the bare loop (default 400; the issue's "
        "job: --docs 20000 --long-share 0)",
    )
    p.add_argument(
        "--long-share",
        type=share,
        default=0.1,
        help="share of man-page excerpts among the documents (default 0.1)",
    )
    p.add_argument(
        "--long-chars",
        type=non_negative_int,
        default=1500,
        help="characters of each man-page excerpt, 0: whole pages (default 1500)",
    )
    p.add_argument(
        "--bare-runs",
        type=positive_int,
        default=2,
        help="bare-loop runs: before the pipeline and (2) after it; the faster counts (default 2)",
    )
    p.add_argument(
        "--batching-docs",
        type=positive_int,
        default=200,
        help="documents (the first of --docs' corpus) for the batching comparison (default 200)",
    )
    p.add_argument(
        "--fifo-rows",
        type=positive_int,
        default=32,
        help="rows per FIFO batch in the batching comparison (default 32)",
    )
    p.add_argument(
        "--fifo-fixed",
        action="store_true",
        help="also FIFO batches padded to the model's max length (slow)",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        default=None,
        help="token budget per model call (default INFERSTREAM_MAX_BATCH_TOKENS)",
    )
    p.add_argument(
        "--fraud-rate",
        type=positive_float,
        default=1000.0,
        help="fraud requests/s offered in each latency phase (default 1000)",
    )
    p.add_argument(
        "--fraud-seconds",
        type=positive_float,
        default=6.0,
        help="length of each fraud latency phase (default 6)",
    )
    p.add_argument(
        "--fraud-docs",
        type=positive_int,
        default=1500,
        help="documents queued for the concurrent docs worker (default 1500)",
    )
    p.add_argument(
        "--only",
        type=parts,
        default=",".join(PARTS),
        help=f"comma list of parts to run ({', '.join(PARTS)}; default all)",
    )
    p.add_argument(
        "--pipeline-timeout",
        type=positive_float,
        default=900.0,
        help="seconds to wait for the pipeline's results (default 900)",
    )
    p.add_argument("--name", default="", help="results file name (default docs-<run id>)")
    p.add_argument("--out", default="", help="write the JSON here instead of bench/results/")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the bench topics")
    return p


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _target(text: str, measured: float | None, bound: float, at_least: bool) -> dict[str, Any]:
    ok = None if measured is None else (measured >= bound if at_least else measured <= bound)
    return {"target": text, "measured": measured, "bound": bound, "ok": ok}


def execute(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.config import Settings

    settings = Settings.from_env()  # a bad INFERSTREAM_* setting: one line, before any work
    if args.max_batch_tokens is not None:
        settings = replace(settings, max_batch_tokens=args.max_batch_tokens)

    from bench.docs_corpus import bench_documents
    from bench.docs_pipeline import delete_space, new_space, run_pipeline
    from bench.run import _meta, warm_up

    selected = set(args.only.split(","))
    started = time.monotonic()
    run_id = time.strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4]
    _log(f"[docs-bench] run {run_id}: {', '.join(p for p in PARTS if p in selected)}")
    n_docs = max(args.docs, args.batching_docs) if "batching" in selected else args.docs
    records = bench_documents(n_docs, args.long_share, args.long_chars, f"docs-{run_id}-")
    docs = records[: args.docs]
    long_docs = sum(1 for r in docs if r["document_id"].startswith("man/"))
    _log(f"[docs-bench] corpus: {len(docs)} docs, {long_docs} man-page excerpts")
    result: dict[str, Any] = {
        "plan": {
            "run_id": run_id,
            "argv": sys.argv[1:],
            "parts": [p for p in PARTS if p in selected],
            "docs": args.docs,
            "long_share": args.long_share,
            "long_chars": args.long_chars,
            "batching_docs": args.batching_docs,
            "fifo_rows": args.fifo_rows,
            "max_batch_tokens": settings.max_batch_tokens,
            "batch_max": settings.batch_max,
            "fraud_rate": args.fraud_rate,
            "fraud_seconds": args.fraud_seconds,
            "fraud_docs": args.fraud_docs,
            "bare_runs": args.bare_runs,
        },
        "corpus": {
            "docs": len(docs),
            "long_docs": long_docs,
            "mean_chars": round(sum(len(r["text"]) for r in docs) / len(docs), 1),
        },
    }
    spaces = []
    try:
        if selected & {"pipeline", "fraud"}:
            warm_up(settings, _log)
        pipe_space = new_space(
            settings, "docs", f"bench-docs-{run_id}-pipe.", f"inferstream-docs-{run_id}"
        )
        spaces.append(pipe_space)
        local = InProcess(settings, docs, pipe_space) if selected & {"bare", "batching"} else None
        bare_runs: list[dict[str, Any]] = []
        if local is not None:
            result["model"] = local.about()
            if "bare" in selected:
                bare_runs.append(local.bare(1))
            if "batching" in selected:
                result["batching_corpus"], result["batching"] = local.batching(args, records)
        if "pipeline" in selected:
            _log(f"[docs-bench] pipeline: inferstream worker --streams docs, {len(docs)} docs")
            result["pipeline"] = run_pipeline(
                settings, pipe_space, docs, args.pipeline_timeout, _log
            )
            p = result["pipeline"]
            done = f"{p.get('completed')}/{p['docs']} in {p.get('wall_s')} s from ready"
            _log(f"[docs-bench]   pipeline: {p.get('docs_per_s')} docs/s ({done})")
        if local is not None and "bare" in selected:
            for run in range(2, args.bare_runs + 1):  # after the pipeline: the machine drifts
                bare_runs.append(local.bare(run))
        if bare_runs:
            result["bare"] = best_bare(bare_runs)
        if "fraud" in selected:
            from bench.docs_fraud import fraud_with_docs

            _log(f"[docs-bench] fraud p99 at {args.fraud_rate:g}/s, alone and with a docs job")
            fraud = new_space(
                settings, "fraud", f"bench-docs-{run_id}-fraud.", f"inferstream-fraud-{run_id}"
            )
            load = new_space(
                settings, "docs", f"bench-docs-{run_id}-load.", f"inferstream-docs-{run_id}-load"
            )
            spaces += [fraud, load]
            backlog = bench_documents(
                args.fraud_docs, args.long_share, args.long_chars, f"docs-{run_id}-load-", 7
            )
            result["fraud"] = fraud_with_docs(
                settings, fraud, load, backlog, args.fraud_rate, args.fraud_seconds, _log
            )
    finally:
        if not args.keep_topics:
            for space in spaces:
                delete_space(settings.kafka_bootstrap, space)
    result["ratios"], result["targets"] = _ratios(result, args.fifo_rows)
    result["meta"] = _meta(started)
    return result


class InProcess:
    """The docs model loaded in this process: the bare loop and the batching comparison."""

    def __init__(self, settings: Any, docs: list[dict[str, Any]], space: Any) -> None:
        from bench.docs_models import engine_windows
        from bench.docs_pipeline import encoded_values
        from pipeline.assembly import WINDOW_BUDGETS, load_stream_model
        from pipeline.core.registry import get_plugin

        self.settings, self.docs = settings, docs
        plugin = get_plugin("docs")
        self.model = load_stream_model(settings, plugin)
        self.preprocess = plugin.preprocessor(self.model.manifest, self.model.directory)
        self.head = plugin.head(self.model.manifest)
        assert plugin.message_cost is not None
        self.windows = engine_windows(
            encoded_values(settings, space, docs), plugin.message_cost,
            WINDOW_BUDGETS * settings.max_batch_tokens, settings.batch_max,
        )  # fmt: skip

    def about(self) -> dict[str, Any]:
        manifest = self.model.manifest
        return {"name": manifest.name, "version": manifest.version,
                "provider": self.model.provider,
                "inference_threads": self.settings.inference_threads}  # fmt: skip

    def bare(self, run: int) -> dict[str, Any]:
        from bench.docs_models import bare_loop
        from bench.measure import busy_cores, loadavg, system_busy

        _log(f"[docs-bench] bare loop run {run}: {len(self.docs)} docs in "
             f"{len(self.windows)} engine windows")  # fmt: skip
        busy0 = system_busy()
        out = bare_loop(
            self.docs, self.windows, self.preprocess, self.model.predict, self.head,
            self.settings.max_batch_tokens, _log,
        )  # fmt: skip
        out.update(system_busy_cores=busy_cores(busy0, system_busy()), loadavg_1m=loadavg())
        _log(f"[docs-bench]   bare loop: {out['docs_per_s']} docs/s")
        return out

    def batching(
        self, args: argparse.Namespace, records: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from bench.docs_models import compare_batching
        from pipeline.scoring.token_budget import token_batches

        subset = records[: args.batching_docs]
        inputs = self.preprocess(subset)
        lengths = inputs.lengths
        _log(f"[docs-bench] batching: {len(subset)} docs, {len(lengths)} token rows")
        manifest = self.model.manifest
        strategies = compare_batching(
            inputs, len(subset), self.model.predict, token_batches,
            self.settings.max_batch_tokens, args.fifo_rows,
            manifest.input.max_length if args.fifo_fixed else None, manifest.input.pad_id, _log,
        )  # fmt: skip
        corpus = {
            "docs": len(subset),
            "rows": len(lengths),
            "tokens": int(lengths.sum()),
            "row_tokens_p50": float(sorted(lengths)[len(lengths) // 2]),
            "row_tokens_max": int(lengths.max()),
            "rows_over_128": int((lengths > 128).sum()),
        }
        return corpus, strategies


def best_bare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The faster bare-loop run (the baseline at its best: contention only slows it), with
    every run's rate kept."""
    best = max(runs, key=lambda r: r.get("docs_per_s") or 0.0)
    return {**best, "runs_docs_per_s": [r.get("docs_per_s") for r in runs]}


def _ratios(result: dict[str, Any], fifo_rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    pipe = result.get("pipeline", {}).get("docs_per_s")
    bare = result.get("bare", {}).get("docs_per_s")
    batching = result.get("batching", {})
    by_length = batching.get("by_length", {}).get("docs_per_s")
    fifo = batching.get(f"fifo_{fifo_rows}", {}).get("docs_per_s")
    fixed = next((v.get("docs_per_s") for k, v in batching.items() if "_fixed_" in k), None)
    fraud = result.get("fraud", {})
    alone = fraud.get("alone", {}).get("p99_ms")
    with_docs = fraud.get("with_docs", {}).get("p99_ms")
    ratios = {
        "pipeline_vs_bare": _ratio(pipe, bare),
        # the pipeline from its ready line, its first batch and group join included
        "pipeline_wall_vs_bare": _ratio(result.get("pipeline", {}).get("wall_docs_per_s"), bare),
        "by_length_vs_fifo": _ratio(by_length, fifo),
        "by_length_vs_fifo_fixed": _ratio(by_length, fixed),
        "fraud_p99_with_docs_vs_alone": _ratio(with_docs, alone),
        "fraud_p99_with_docs_vs_alone_after": _ratio(
            with_docs, fraud.get("alone_after", {}).get("p99_ms")
        ),
    }
    targets = {
        "docs_pipeline_ge_90pct_of_bare_loop": _target(
            "docs/s of the pipeline >= 0.9 x the bare loop", ratios["pipeline_vs_bare"], 0.9, True
        ),
        "by_length_ge_1.5x_fifo": _target(
            f"docs/s by length (token budget) >= 1.5 x FIFO {fifo_rows}-row batches",
            ratios["by_length_vs_fifo"],
            1.5,
            True,
        ),
        "fraud_p99_with_docs_le_2x_alone": _target(
            "fraud p99 with a docs job <= 2 x alone",
            ratios["fraud_p99_with_docs_vs_alone"],
            2.0,
            False,
        ),
    }
    return ratios, targets


def table(result: dict[str, Any]) -> str:
    lines = [f"docs bench {result['plan']['run_id']}  ({result['corpus']['docs']} docs, "
             f"{result['corpus']['long_docs']} man-page excerpts)"]  # fmt: skip

    def row(name: str, value: Any, unit: str = "") -> None:
        lines.append(f"  {name:<44} {'-' if value is None else value} {unit}".rstrip())

    if "bare" in result:
        row("bare loop (tokenize+model+pool+head)", result["bare"]["docs_per_s"], "docs/s")
    if "pipeline" in result:
        p = result["pipeline"]
        row("pipeline (worker, Kafka in and out)", p.get("docs_per_s"), "docs/s")
        row("  pipeline wall from ready", p.get("wall_s"), f"s for {p.get('completed')} docs")
        row("  pipeline from worker start", p.get("total_s"), "s")
    for name, entry in result.get("batching", {}).items():
        row(f"batching {name}", entry["docs_per_s"],
            f"docs/s model-only ({entry['model_calls']} calls, "
            f"padding {entry['padding_share']:.0%})")  # fmt: skip
    fraud = result.get("fraud", {})
    for phase in ("alone", "with_docs", "alone_after"):
        if phase in fraud:
            f = fraud[phase]
            row(f"fraud p99 {phase} @ {fraud['offered_per_s']:g}/s", f["p99_ms"],
                f"ms (p50 {f['p50_ms']}{', saturated' if f['saturated'] else ''})")  # fmt: skip
    if "with_docs" in fraud:
        row("  docs worker meanwhile", fraud["with_docs"]["docs_per_s_during"],
            f"docs/s, {fraud['with_docs']['docs_worker_cores']} cores")  # fmt: skip
    lines.append("ratios")
    for name, value in result["ratios"].items():
        if value is not None:
            row(name, value)
    lines.append("targets")
    for check in result["targets"].values():
        ok = {True: "ok", False: "MISSED", None: "not run"}[check["ok"]]
        lines.append(f"  {check['target']:<60} {check['measured']}  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse (a bad flag: one line, exit 2), then run; a user error is one line and its code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        result = execute(args)
    except KeyboardInterrupt:
        return 130
    except InferstreamError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    from bench import report

    path = report.write(result, args.name or f"docs-{result['plan']['run_id']}", args.out or None)
    print(table(result))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
