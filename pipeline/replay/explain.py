"""`inferstream explain <request-id>`: one request, what was served for it, and a re-score.

How a request is found without an index: provenance is keyed by request id, so its partition
is Kafka's murmur2 of the id (pipeline/kafka/partitioner.py) and only that partition is
scanned, newest match kept. The provenance names the request's source offset, which is read
directly; the result is on the results partition of the request's entity key. A request
that was dead-lettered has no provenance: the dead-letter topic is scanned for its
`request_id` header. Scans are bounded by what the topics retain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.codec import AvroDeserializer, DecodeError, registry_from_settings
from pipeline.config import Settings
from pipeline.core.messages import InboundMessage
from pipeline.core.registry import get_plugin
from pipeline.kafka.partitioner import partition_for
from pipeline.kafka.ranges import (
    PartitionCoverage,
    partition_count,
    read_ranges,
    whole_partitions,
)
from pipeline.replay.exceptions import ReplayError
from pipeline.replay.report import COMMON_RESULT_FIELDS
from pipeline.replay.rescore import Rescorer


def _scan(bootstrap: str, topic: str, partitions: list[int] | None) -> Any:
    coverage = whole_partitions(bootstrap, topic, partitions)
    for batch in read_ranges(bootstrap, topic, coverage):
        yield from batch


def explain(settings: Settings, stream: str, request_id: str) -> dict[str, Any]:
    plugin = get_plugin(stream)
    topics = plugin.topics(settings.topic_namespace)
    bootstrap = settings.kafka_bootstrap
    registry = registry_from_settings(settings)
    decode = AvroDeserializer(registry)
    key = request_id.encode()

    provenance = None
    home = partition_for(key, partition_count(bootstrap, topics.provenance))
    for message in _scan(bootstrap, topics.provenance, [home]):
        if message.key == key:
            provenance = _decoded(decode, message)  # the newest one wins
    if provenance is None:
        return _dead_letter(settings, stream, request_id, decode)

    source = _read_one(
        bootstrap, topics.requests, provenance["source_partition"], provenance["source_offset"]
    )
    request = _decoded(decode, source)
    result = None
    if source.key is not None:
        home = partition_for(source.key, partition_count(bootstrap, topics.results))
        for message in _scan(bootstrap, topics.results, [home]):
            record = _decoded(decode, message)
            if record is not None and record["request_id"] == request_id:
                result = record
    rescorer = Rescorer(settings, plugin, topics, registry)
    try:
        (replayed,) = rescorer.score([source], provenance["model_version"])
        model = rescorer.handler(provenance["model_version"]).scorer.model
    finally:
        rescorer.close()
    preprocess = plugin.preprocessor(model.manifest, model.directory)
    inputs = preprocess([request]) if request is not None else None
    features = _model_inputs(model.manifest, inputs)
    outputs = _head_fields(result)
    again = _head_fields(replayed.result)
    return {
        "stream": stream,
        "request_id": request_id,
        "found_in": topics.provenance,
        "request": request,
        "source": {
            "topic": topics.requests,
            "partition": provenance["source_partition"],
            "offset": provenance["source_offset"],
        },
        "model_inputs": features,
        "served": outputs,
        "rescored": again,
        "reproduced": bool(outputs) and all(
            _same(outputs[k], again.get(k)) for k in outputs
        ),
        "data_hash_equal": (replayed.provenance or {}).get("data_hash") == provenance["data_hash"],
        "model": {
            "name": provenance["model_name"],
            "version": provenance["model_version"],
            "sha256": provenance["model_sha256"],
            "thresholds": dict(model.manifest.thresholds),
            "execution_provider": provenance["execution_provider"],
        },
        "batch": {
            "id": provenance["batch_id"],
            "size": provenance["batch_size"],
            "cut": provenance.get("batch_cut"),
            "wait_ms": provenance.get("batch_wait_ms"),
            "queue_wait_ms": provenance["queue_wait_ms"],
            "inference_ms": provenance["inference_ms"],
        },
        "latency_ms": result["latency_ms"] if result else None,
        "cache_hit": provenance["cache_hit"],
        "degraded": provenance["degraded"],
    }


def _dead_letter(
    settings: Settings, stream: str, request_id: str, decode: AvroDeserializer
) -> dict[str, Any]:
    topics = get_plugin(stream).topics(settings.topic_namespace)
    found = None
    for message in _scan(settings.kafka_bootstrap, topics.dlq, None):
        if message.header("request_id") == request_id.encode():
            found = message
    if found is None:
        raise ReplayError(
            f"request id {request_id!r} is in neither {topics.provenance} nor {topics.dlq} "
            "(what those topics retain was searched)"
        )
    headers = {k: v.decode(errors="replace") for k, v in found.headers}
    return {
        "stream": stream,
        "request_id": request_id,
        "found_in": topics.dlq,
        "dead_letter": {
            "reason": headers.get("dlq.reason"),
            "detail": headers.get("dlq.detail"),
            "stage": headers.get("dlq.stage"),
            "worker": headers.get("dlq.worker"),
        },
        "source": {
            "topic": headers.get("dlq.source.topic"),
            "partition": int(headers.get("dlq.source.partition", -1)),
            "offset": int(headers.get("dlq.source.offset", -1)),
        },
        "request": _decoded(decode, found),
    }


def _read_one(bootstrap: str, topic: str, partition: int, offset: int) -> InboundMessage:
    coverage = [PartitionCoverage(partition, offset, offset + 1, offset, offset + 1)]
    for batch in read_ranges(bootstrap, topic, coverage):
        return batch[0]
    raise ReplayError(f"{topic} partition {partition} offset {offset} is no longer retained")


def _decoded(decode: AvroDeserializer, message: InboundMessage) -> dict[str, Any] | None:
    try:
        return decode(message.value)
    except DecodeError:
        return None


def _head_fields(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {k: v for k, v in result.items() if k not in COMMON_RESULT_FIELDS}


def _same(a: Any, b: Any, tolerance: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tolerance
    return a == b


def _model_inputs(manifest: Any, inputs: Any) -> dict[str, Any]:
    """Named features of a dense input; a token input as its ids (first row of each chunk)."""
    if inputs is None or not len(inputs.matrix):
        return {}
    row = np.asarray(inputs.matrix[0])
    if manifest.input.kind == "tokens":
        lengths = getattr(inputs, "lengths", None)
        used = int(lengths[0]) if lengths is not None else len(row)
        return {"token_ids": row[:used].tolist(), "rows": len(inputs.matrix)}
    return dict(zip(manifest.feature_names, row.tolist(), strict=True))
