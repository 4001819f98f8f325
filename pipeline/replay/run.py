"""One replay: resolve the range, read it, re-score it in the sandbox, join, compare."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pipeline.codec import AvroDeserializer, registry_from_settings
from pipeline.config import Settings
from pipeline.core.messages import InboundMessage
from pipeline.core.registry import get_plugin
from pipeline.kafka.admin import create_topic
from pipeline.kafka.publisher import Publisher
from pipeline.kafka.ranges import read_ranges, resolve_offsets, resolve_times
from pipeline.models.manifest import resolve_model_dir
from pipeline.replay.by_id import find_requests
from pipeline.replay.ranges import OffsetRange, TimeRange
from pipeline.replay.report import COMMON_RESULT_FIELDS, DEFAULT_TOLERANCE, Pair, build_report
from pipeline.replay.rescore import Rescorer
from pipeline.replay.served import read_served

NUMERIC = {"double", "float", "int", "long"}
WEEK_MS = 7 * 24 * 3600 * 1000


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
    if request_ids is not None:
        found = find_requests(
            bootstrap, topics, request_ids, AvroDeserializer(registry, logical_types=False)
        )
        coverage, messages, missing = found.coverage, found.messages, found.missing
    else:
        if times is not None:
            coverage = resolve_times(bootstrap, topics.requests, times.from_ms, times.to_ms)
        else:
            assert offsets is not None
            coverage = resolve_offsets(
                bootstrap, topics.requests, [(r.partition, r.start, r.end) for r in offsets]
            )
        total = sum(c.count for c in coverage)
        messages = []
        for batch in read_ranges(bootstrap, topics.requests, coverage):
            messages.extend(batch)
            if progress is not None:
                progress(len(messages), total)
    first_ms = min((m.timestamp_ms for m in messages), default=times.from_ms if times else 0)
    served = read_served(bootstrap, topics, registry, coverage, first_ms)

    # each request through the version that served it, unless one version was asked for
    def served_version(m: InboundMessage) -> str | None:
        record = served.provenance.get((m.partition, m.offset))
        return model_version or (record["model_version"] if record else None)

    rescorer = Rescorer(settings, plugin, topics, registry)
    if sandbox:
        rescorer.replay_id, rescorer.sandbox_topic = _sandbox_topic(settings, topics.prefix)
        rescorer.sandbox = Publisher.from_settings(settings).publish
    try:
        replayed = _rescore(rescorer, messages, served_version, settings.batch_max)
        rescorer.sandbox = None  # only the first replay is published
        pairs = [
            Pair(src, r, served.result_for(src), served.provenance.get(src), served.dead.get(src))
            for src, r in replayed.items()
        ]
        elapsed = time.monotonic() - started  # read, join and re-score: the replay's own rate
        versus: dict[str, dict[tuple[int, int], Any]] = {}
        if against is not None:
            versus["against"] = _rescore(rescorer, messages, lambda m: against, settings.batch_max)
        if noise:  # the same versions again: what differs here is the runtime's own noise
            versus["noise"] = _rescore(rescorer, messages, served_version, settings.batch_max)
    finally:
        rescorer.close()
    catalog = registry.catalog  # type: ignore[attr-defined]
    fields = head_fields(catalog.latest(plugin.result_schema).definition)
    coverage_rows = [_coverage_row(c) for c in coverage]
    report = build_report(stream, pairs, fields, coverage_rows, tolerance, top, elapsed)
    for name, other in versus.items():
        # replay vs replay: the first replay stands where the served records stood
        second = [
            Pair(src, other[src], first.result, first.provenance, None)
            for src, first in replayed.items()
        ]
        report[name] = build_report(
            stream, second, fields, report["coverage"], tolerance, top, 0.0
        )
    report["sandbox_topic"] = rescorer.sandbox_topic or None
    if request_ids is not None:
        report["request_ids"] = {"asked": len(request_ids), "not_found": len(missing),
                                 "not_found_first": missing[:10]}  # fmt: skip
    report["asked_version"] = model_version
    report["against_version"] = against
    report["model_seconds"] = rescorer.model_seconds
    report["batches"] = rescorer.batches
    return report


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
