"""`inferstream jobs`: batch document-processing jobs (submit, status, list, wait, cancel,
resume, results, errors, demo).

A job's documents are requests of a stream with a job field (`docs`); a worker of that stream
scores them and tracks the jobs. Run it as a process and consumer group of its own, so that
documents never delay other streams: `INFERSTREAM_APP_ID=inferstream-docs inferstream worker
--streams docs`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.cli import CliError
from pipeline.config import settings

WORKER_HINT = "INFERSTREAM_APP_ID=inferstream-docs inferstream worker --streams docs"


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli import positive_float

    jobs = sub.add_parser(
        "jobs",
        help="batch document jobs: submit a file or directory, follow, cancel, fetch results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND")

    p = cmds.add_parser("submit", help="submit FILE (JSON lines) or DIR (text files) as a job")
    p.add_argument("input", type=Path, metavar="FILE|DIR")
    p.add_argument("--stream", default="docs", help="stream of the documents (default docs)")
    p.add_argument("--name", help="job name; the same name again continues that job")
    p.add_argument("--budget", type=positive_float, help="model-seconds the job may spend")
    p.add_argument("--detach", action="store_true", help="print the job id and return")
    p.set_defaults(func=run_submit)

    p = cmds.add_parser("status", help="a job's state, counts, throughput and cost")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p.set_defaults(func=run_status)

    p = cmds.add_parser("list", help="the jobs of this namespace")
    p.set_defaults(func=run_list)

    p = cmds.add_parser("wait", help="wait for a job to end: exit 0 when completed")
    p.add_argument("job_id")
    p.add_argument("--timeout", type=positive_float, help="give up after S seconds (exit 1)")
    p.set_defaults(func=run_wait)

    p = cmds.add_parser("cancel", help="refuse a job's remaining documents")
    p.add_argument("job_id")
    p.set_defaults(func=run_cancel)

    p = cmds.add_parser("resume", help="send a job's unfinished documents again")
    p.add_argument("job_id")
    p.add_argument("--budget", type=positive_float, help="the job's new budget (model-seconds)")
    p.add_argument("--detach", action="store_true", help="print the job id and return")
    p.set_defaults(func=run_resume)

    p = cmds.add_parser("results", help="one JSON line per completed document")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    p.set_defaults(func=run_results)

    p = cmds.add_parser("errors", help="one JSON line per document that did not complete")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    p.set_defaults(func=run_errors)

    p = cmds.add_parser("demo", help="a job of Debian glossary and man-page texts, end to end")
    p.add_argument("--count", type=int, default=300, help="documents (default 300)")
    p.set_defaults(func=run_demo)
    jobs.set_defaults(func=lambda args: _usage(jobs))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store() -> Any:
    from pipeline.jobs.operations import job_store

    return job_store(settings())


# -- submit / resume ----------------------------------------------------------------------
def run_submit(args: argparse.Namespace) -> int:
    from pipeline.jobs.inputs import read_inputs
    from pipeline.jobs.spec import check_name, job_id_for, new_name
    from pipeline.jobs.submit import job_plugin, prepare_spec, send

    cfg = settings()
    plugin = job_plugin(args.stream)  # flags first: an unknown stream is exit 2 before any read
    name = check_name(args.name) if args.name else new_name()
    if not args.input.exists():
        raise CliError(f"{args.input}: no such file or directory", 2)
    _require_topics(cfg, plugin.topics(cfg.topic_namespace).requests)
    store = _store()
    job_id = job_id_for(plugin.name, name)
    existing = _existing(cfg, store, job_id)
    inputs = read_inputs(args.input)
    spec = prepare_spec(cfg, plugin, inputs, name, args.budget, existing)
    return _sent(args, store, send(cfg, store, plugin, inputs, spec, existing is not None))


def _existing(cfg: Any, store: Any, job_id: str) -> Any:
    """The job's spec when it exists (rebuilt from the topics if Redis lost it), else None."""
    from pipeline.jobs.exceptions import JobNotFound
    from pipeline.jobs.operations import load

    try:
        return load(cfg, store, job_id).spec
    except JobNotFound:
        return None


def run_resume(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import resume

    return _sent(args, _store(), resume(settings(), _store(), args.job_id, args.budget))


def _sent(args: argparse.Namespace, store: Any, submitted: Any) -> int:
    spec = submitted.spec
    print(spec.job_id, flush=True)
    cost = spec.estimated_cost
    budget = "no budget" if spec.budget is None else f"budget {spec.budget:g} model-s"
    note = f", {submitted.skipped} already done" if submitted.skipped else ""
    print(
        f"job {spec.name}: {spec.total} documents ({spec.input_errors} bad){note}; "
        f"sent {submitted.sent}; estimated {spec.estimated_tokens} tokens = "
        f"{cost:.2f} model-s ({budget})",
        file=sys.stderr,
    )
    if args.detach:
        return 0
    return _follow_until_done(store, spec.job_id)


def _follow_until_done(store: Any, job_id: str, timeout_s: float | None = None) -> int:
    from pipeline.jobs.operations import follow

    show = _bar() if sys.stdout.isatty() else _lines()
    try:
        final = follow(store, job_id, show.update, timeout_s)
    finally:
        show.close()
    return _outcome(final, timeout_s)


def _outcome(snapshot: Any, timeout_s: float | None) -> int:
    c = snapshot.counts
    if snapshot.state == "completed":
        print(
            f"job {snapshot.spec.job_id} completed: {c.completed} documents, {c.failed} failed",
            file=sys.stderr,
        )
        return 0
    why = {
        "failed": "no document could be scored (see `inferstream jobs errors`)",
        "cancelled": f"cancelled; {c.cancelled} documents refused",
        "budget_exceeded": f"its budget is spent; {c.deferred} documents wait for "
        "`inferstream jobs resume ID --budget N`",
    }.get(snapshot.state, f"still {snapshot.state} after {timeout_s or 0:g} s")
    print(f"inferstream: job {snapshot.spec.job_id}: {why}", file=sys.stderr)
    return 1


class _lines:
    """Progress as a line every few seconds, for logs and pipes."""

    def __init__(self) -> None:
        from pipeline.jobs.progress import RateMeter

        self.meter = RateMeter()
        self.last = 0.0

    def update(self, snapshot: Any) -> None:
        import time

        self.meter.add(snapshot.counts.processed)
        if time.monotonic() - self.last >= 2.0 or snapshot.state not in ("in_progress",):
            self.last = time.monotonic()
            print(_progress_text(snapshot, self.meter.rate), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _bar:
    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        from pipeline.jobs.progress import RateMeter

        self.meter = RateMeter()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[text]}")
        )
        self.task = self.progress.add_task("job", total=None, text="")
        self.progress.start()

    def update(self, snapshot: Any) -> None:
        self.meter.add(snapshot.counts.processed)
        c = snapshot.counts
        self.progress.update(
            self.task,
            total=c.total,
            completed=c.accounted,
            description=snapshot.state,
            text=_progress_text(snapshot, self.meter.rate, short=True),
        )

    def close(self) -> None:
        self.progress.stop()


def _progress_text(snapshot: Any, rate: float | None, short: bool = False) -> str:
    from pipeline.jobs.progress import eta_seconds, format_duration

    c = snapshot.counts
    speed = "?" if rate is None else f"{rate:.1f}"
    text = (
        f"{c.completed} done / {c.failed} failed / {c.total} total, {speed} docs/s, "
        f"ETA {format_duration(eta_seconds(c.remaining, rate))}"
    )
    return text if short else f"job {snapshot.spec.job_id} {snapshot.state}: {text}"


# -- status / list / wait / cancel ----------------------------------------------------------
def _status(snapshot: Any) -> dict[str, Any]:
    from pipeline.jobs.progress import estimated_total_cost, eta_seconds

    spec, c = snapshot.spec, snapshot.counts
    rate = snapshot.rate
    return {
        "job_id": spec.job_id,
        "name": spec.name,
        "stream": spec.stream,
        "state": snapshot.state,
        "total": c.total,
        "completed": c.completed,
        "failed": c.failed,
        "cached": c.cached,
        "deferred": c.deferred,
        "cancelled": c.cancelled,
        "docs_per_s": None if rate is None else round(rate, 2),
        "eta_s": eta_seconds(c.remaining, rate),
        "tokens": c.tokens,
        "cost_model_s": round(c.cost(spec.seconds_per_token), 4),
        "estimated_cost_model_s": round(
            estimated_total_cost(c, spec.seconds_per_token, spec.estimated_cost), 4
        ),
        "budget_model_s": spec.budget,
        "source": spec.source,
    }


def run_status(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import load

    status = _status(load(settings(), _store(), args.job_id))
    if args.json:
        print(json.dumps(status))
        return 0
    for key, value in status.items():
        print(f"{key:24} {'-' if value is None else value}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    store = _store()
    ids = store.require(store.job_ids(), "the jobs") or []
    print(f"{'job id':21} {'state':16} {'done':>6} {'failed':>6} {'total':>6}  name")
    for job_id in ids:
        snapshot = store.snapshot(job_id)
        if snapshot is None:
            continue
        c = snapshot.counts
        print(
            f"{job_id:21} {snapshot.state:16} {c.completed:6} {c.failed:6} {c.total:6}  "
            f"{snapshot.spec.name}"
        )
    return 0


def run_wait(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import follow, load

    store = _store()
    load(settings(), store, args.job_id)  # an unknown id: exit 2 at once
    final = follow(store, args.job_id, lambda s: None, args.timeout)
    return _outcome(final, args.timeout)


def run_cancel(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import cancel

    snapshot = cancel(settings(), _store(), args.job_id)
    print(f"job {args.job_id} {snapshot.state}; its remaining documents are refused")
    return 0


def run_results(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import write_results

    n = write_results(settings(), _store(), args.job_id, args.output)
    print(f"{n} results written to {args.output}", file=sys.stderr)
    return 0


def run_errors(args: argparse.Namespace) -> int:
    from pipeline.jobs.operations import write_errors

    n = write_errors(settings(), _store(), args.job_id, args.output)
    print(f"{n} errors written to {args.output}", file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from pipeline.jobs.demo import run_demo as demo

    if args.count < 1:
        raise CliError(f"--count must be >= 1 (got {args.count})", 2)
    return demo(settings(), args.count)


def _require_topics(cfg: Any, topic: str) -> None:
    from pipeline.cli.produce_cmd import require_topic

    try:
        require_topic(cfg.kafka_bootstrap, topic)
    except CliError as exc:
        raise CliError(f"{exc}; then start a worker: {WORKER_HINT}") from None
