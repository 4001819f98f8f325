"""Re-scoring in a sandbox: the worker's own scoring handler, delivering into memory.

The handler is `ScoringHandler` around `BatchScorer` exactly as the worker builds it, except
that nothing leaves the process: no result cache (replay must run the model), no request-id
rule (replayed ids are all "seen"), and the deliver stage collects the outputs instead of
publishing them. The outputs are decoded back into records, so what is compared is what a
worker would have published.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.assembly import load_stream_model
from pipeline.codec import SchemaRegistry
from pipeline.config import Settings
from pipeline.core.batch import Batch
from pipeline.core.messages import InboundMessage, OutboundMessage
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics
from pipeline.scoring.handler import ScoringHandler
from pipeline.scoring.scorer import BatchScorer


@dataclass
class Replayed:
    """What the sandboxed handler made of one request."""

    request_id: str | None
    result: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    dead_reason: str | None = None
    dead_detail: str | None = None


@dataclass
class Rescorer:
    settings: Settings
    plugin: StreamPlugin
    topics: StreamTopics
    registry: SchemaRegistry
    # results also go here (`--sandbox`), as `deliver(messages)`; None: nothing leaves
    sandbox: Any = None
    sandbox_topic: str = ""
    replay_id: str = ""
    model_seconds: dict[str, float] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)  # per batch: version, size, ms
    _handlers: dict[str, ScoringHandler] = field(default_factory=dict)
    _seq: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._outbox: list[OutboundMessage] = []

    def handler(self, version: str | None) -> ScoringHandler:
        key = version or ""
        if key not in self._handlers:
            model = load_stream_model(self.settings, self.plugin, version)
            scorer = BatchScorer(
                self.plugin, self.topics, model, self.registry, worker_id="replay",
                max_batch_tokens=self.settings.max_batch_tokens,
            )  # fmt: skip
            self._handlers[key] = ScoringHandler(
                scorer, self._outbox.extend, self.settings.model_timeout_s,
                self.settings.model_retries,
            )  # fmt: skip
        return self._handlers[key]

    def version_of(self, version: str | None) -> str:
        return self.handler(version).scorer.model.manifest.version

    def score(self, messages: Sequence[InboundMessage], version: str | None) -> list[Replayed]:
        """One batch through the handler's four stages; one record per request, in order."""
        handler = self.handler(version)
        self._outbox.clear()
        started = time.perf_counter()
        scored = handler.handle(
            Batch(next(self._seq), list(messages), "full", 0.0, time.monotonic(), {})
        )
        model = handler.scorer.model.manifest
        took = time.perf_counter() - started
        self.model_seconds[model.version] = self.model_seconds.get(model.version, 0.0) + took
        self.batches.append({"version": model.version, "size": len(messages), "ms": took * 1000})
        by_offset: dict[tuple[int, int], Replayed] = {}
        for message in messages:
            rid = message.header("request_id")
            by_offset[(message.partition, message.offset)] = Replayed(
                rid.decode(errors="replace") if rid else None
            )
        for out in self._outbox:
            if out.topic == self.topics.dlq:
                headers = dict(out.headers)
                source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
                replayed = by_offset[source]
                replayed.dead_reason = headers["dlq.reason"].decode()
                replayed.dead_detail = headers["dlq.detail"].decode(errors="replace")
        # the scored rows straight from the scorer: the values its encoder wrote (doubles and
        # strings encode losslessly), without decoding them back
        columns = {name: _plain(values) for name, values in scored.fields.items()}
        for i, (message, request_id, data_hash) in enumerate(
            zip(scored.messages, scored.request_ids, scored.hashes, strict=True)
        ):
            replayed = by_offset[(message.partition, message.offset)]
            replayed.request_id = request_id
            replayed.result = {
                "request_id": request_id,
                "model_version": model.version,
                **{name: values[i] for name, values in columns.items()},
            }
            replayed.provenance = {
                "request_id": request_id,
                "data_hash": data_hash,
                "preprocessing_version": model.preprocessing_version,
                "model_version": model.version,
                "source_partition": message.partition,
                "source_offset": message.offset,
            }
        if self.sandbox is not None:
            self.sandbox(self._sandboxed(scored.messages))
        return [by_offset[(m.partition, m.offset)] for m in messages]

    def _sandboxed(self, scored: Sequence[InboundMessage]) -> list[OutboundMessage]:
        """This batch's results, to the sandbox topic, marked as a replay with their source."""
        out = []
        results = [m for m in self._outbox if m.topic == self.topics.results]
        for result, source in zip(results, scored, strict=True):
            headers = [
                *result.headers,
                ("replay", b"true"),
                ("replay.id", self.replay_id.encode()),
                ("replay.source.partition", str(source.partition).encode()),
                ("replay.source.offset", str(source.offset).encode()),
            ]
            out.append(OutboundMessage(self.sandbox_topic, result.key, result.value, headers))
        return out

    def close(self) -> None:
        for handler in self._handlers.values():
            handler.close()


def _plain(values: Any) -> list[Any]:
    """A head column as Python values (numpy arrays become floats, ints, strings)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)
