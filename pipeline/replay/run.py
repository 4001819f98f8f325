"""One replay: resolve the range, read it, re-score it in the sandbox, join, compare."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from pipeline.codec import AvroDeserializer, registry_from_settings
from pipeline.config import Settings
from pipeline.core.messages import InboundMessage
from pipeline.core.registry import get_plugin
from pipeline.kafka.admin import create_topic
from pipeline.kafka.publisher import Publisher
from pipeline.kafka.ranges import PartitionCoverage, read_ranges, resolve_offsets, resolve_times
from pipeline.models.manifest import resolve_model_dir
from pipeline.replay.by_id import find_requests
from pipeline.replay.prefetch import prefetched
from pipeline.replay.ranges import OffsetRange, TimeRange
from pipeline.replay.report import COMMON_RESULT_FIELDS, DEFAULT_TOLERANCE, Pair, ReportBuilder
from pipeline.replay.rescore import Rescorer
from pipeline.replay.served import ServedBatch, read_served

NUMERIC = {"double", "float", "int", "long"}
WEEK_MS = 7 * 24 * 3600 * 1000
MAX_BATCH_ROWS = 2000  # per-batch timings kept for the report's latency plot


def head_fields(result_schema: dict[str, Any]) -> dict[str, bool]:
    """The output head's result fields (beyond the common ones), each with whether numeric."""
    fields = {}
    for f in result_schema["fields"]:
        if f["name"] in COMMON_RESULT_FIELDS:
            continue
        kind = f["type"]
        if isinstance(kind, dict) and kind.get("type") == "array":  # an embedding, top scores
            kind = kind.get("items")
        kinds = {k if isinstance(k, str) else k.get("type") for k in kind} if isinstance(
            kind, list
        ) else {kind if isinstance(kind, str) else kind.get("type")}
        fields[f["name"]] = bool(kinds & NUMERIC)
    return fields


def replay(
    settings: Settings,
    stream: str,
    times: TimeRange | None = None,
    offsets: list[OffsetRange] | None = None,
    model_version: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    top: int = 10,
    progress: Callable[[int, int], None] | None = None,
    against: str | None = None,
    noise: bool = False,
    sandbox: bool = False,
    request_ids: list[str] | None = None,
) -> dict[str, Any]:
    plugin = get_plugin(stream)
    topics = plugin.topics(settings.topic_namespace)
    for version in (model_version, against):  # an unknown version fails before any reading
        if version is not None:
            resolve_model_dir(settings.models_dir, plugin.model_name, version)
    bootstrap = settings.kafka_bootstrap
    registry = registry_from_settings(settings)
    started = time.monotonic()
    missing: list[str] = []
    batches: Callable[[], Iterator[list[InboundMessage]]]
    if request_ids is not None:
        found = find_requests(
            bootstrap, topics, request_ids, AvroDeserializer(registry, logical_types=False)
        )
        coverage, missing = found.coverage, found.missing
        first_ms = min((m.timestamp_ms for m in found.messages), default=0)
        batches = lambda: _chunks(found.messages, settings.batch_max)  # noqa: E731
    else:
        if times is not None:
            coverage = resolve_times(bootstrap, topics.requests, times.from_ms, times.to_ms)
            first_ms = times.from_ms
        else:
            assert offsets is not None
            coverage = resolve_offsets(
                bootstrap, topics.requests, [(r.partition, r.start, r.end) for r in offsets]
            )
            first_ms = _first_timestamp(bootstrap, topics.requests, coverage)
        batches = lambda: read_ranges(  # noqa: E731
            bootstrap, topics.requests, coverage, batch_size=settings.batch_max
        )
    total = sum(c.count for c in coverage)
    served = read_served(bootstrap, topics, registry, coverage, first_ms, settings.cache_dir)

    catalog = registry.catalog  # type: ignore[attr-defined]
    fields = head_fields(catalog.latest(plugin.result_schema).definition)
    main = ReportBuilder(stream, fields, tolerance, top)
    versus = {name: ReportBuilder(stream, fields, tolerance, top)
              for name, wanted in (("against", against), ("noise", noise)) if wanted}  # fmt: skip
    rescorer = Rescorer(settings, plugin, topics, registry)
    publish = None
    if sandbox:
        rescorer.replay_id, rescorer.sandbox_topic = _sandbox_topic(settings, topics.prefix)
        publish = Publisher.from_settings(settings).publish
    extra_s = 0.0  # time in the --against / --noise passes: not the replay's own rate
    done = 0
    try:
        # streaming: one batch of requests at a time, read ahead on a thread while the model
        # runs, joined with its served records from the on-disk index
        for batch in prefetched(batches()):
            known = served.lookup([(m.partition, m.offset) for m in batch])

            def served_version(m: InboundMessage, known: ServedBatch = known) -> str | None:
                record = known.provenance.get((m.partition, m.offset))
                return model_version or (record["model_version"] if record else None)

            rescorer.sandbox = publish  # only the first replay is published
            first = _rescore(rescorer, batch, served_version, settings.batch_max)
            rescorer.sandbox = None
            for src, r in first.items():
                main.add(Pair(src, r, known.result_for(src), known.provenance.get(src),
                              known.dead.get(src)))  # fmt: skip
            extra_started = time.monotonic()
            for name, builder in versus.items():
                other = _rescore(
                    rescorer, batch, (lambda m: against) if name == "against" else served_version,
                    settings.batch_max,
                )  # fmt: skip
                # replay vs replay: the first replay stands where the served records stood
                for src, again in other.items():
                    builder.add(Pair(src, again, first[src].result, first[src].provenance, None))
            extra_s += time.monotonic() - extra_started
            done += len(batch)
            if progress is not None:
                progress(done, total)
        elapsed = time.monotonic() - started - extra_s  # read, join and re-score
    finally:
        rescorer.close()
        served.close()
    coverage_rows = [_coverage_row(c) for c in coverage]
    report = main.build(coverage_rows, elapsed)
    for name, builder in versus.items():
        report[name] = builder.build(report["coverage"], 0.0)
    report["sandbox_topic"] = rescorer.sandbox_topic or None
    if request_ids is not None:
        report["request_ids"] = {"asked": len(request_ids), "not_found": len(missing),
                                 "not_found_first": missing[:10]}  # fmt: skip
    report["asked_version"] = model_version
    report["against_version"] = against
    report["model_seconds"] = rescorer.model_seconds
    report["batches"] = rescorer.batches[-MAX_BATCH_ROWS:]  # the latest: bounded too
    return report


def _chunks(messages: list[InboundMessage], size: int) -> Iterator[list[InboundMessage]]:
    for i in range(0, len(messages), size):
        yield messages[i : i + size]


def _first_timestamp(bootstrap: str, topic: str, coverage: list[PartitionCoverage]) -> int:
    """The oldest timestamp among the first records of the range's partitions."""
    firsts = [replace(c, end=c.start + 1) for c in coverage if c.count]
    stamps = [m.timestamp_ms for batch in read_ranges(bootstrap, topic, firsts) for m in batch]
    return min(stamps, default=0)


def _sandbox_topic(settings: Settings, prefix: str) -> tuple[str, str]:
    """A fresh `<stream>.replay.<id>` topic, kept a week."""
    replay_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    topic = f"{prefix}.replay.{replay_id}"
    create_topic(
        settings.kafka_bootstrap, topic, settings.topic_partitions, settings.topic_replication,
        {"retention.ms": str(WEEK_MS)},
    )  # fmt: skip
    return replay_id, topic


def _rescore(
    rescorer: Rescorer,
    messages: list[InboundMessage],
    version_of: Callable[[InboundMessage], str | None],
    batch_max: int,
) -> dict[tuple[int, int], Any]:
    """Every message re-scored, batched per model version, by source (partition, offset)."""
    groups: dict[str | None, list[InboundMessage]] = defaultdict(list)
    for m in messages:
        groups[version_of(m)].append(m)
    out = {}
    for version, group in groups.items():
        for i in range(0, len(group), batch_max):
            chunk = group[i : i + batch_max]
            for message, replayed in zip(chunk, rescorer.score(chunk, version), strict=True):
                out[(message.partition, message.offset)] = replayed
    return dict(sorted(out.items()))


def _coverage_row(c: Any) -> dict[str, int]:
    return {
        "partition": c.partition,
        "start": c.start,
        "end": c.end,
        "records": c.count,
        "oldest_retained": c.low,
        "end_offset": c.high,
    }
