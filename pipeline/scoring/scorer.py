"""One micro-batch: decode, validate, build one feature matrix, score once, build the outputs.

Every method is synchronous; the engine runs each on its own stage thread (handler.py). An
input problem dead-letters that message alone; the rest of the batch goes on.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline import __version__
from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry
from pipeline.codec.columns import ColumnEncoder
from pipeline.core.messages import DEGRADE_HEADER, InboundMessage, OutboundMessage
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics
from pipeline.scoring.dead_letters import dead_letter
from pipeline.scoring.provenance import BatchCost, RequestCosts, data_hashes
from pipeline.scoring.stores import AdmissionRule, OutputCache, RequestIdRule
from pipeline.scoring.token_budget import Predict, pool_rows, run_by_length
from pipeline.tiers.cascade import Routed, TierRouter, tier_defaults


class Model(Protocol):
    """What the scorer needs of a loaded model (pipeline.models.runtime.LoadedModel)."""

    manifest: Any
    sha256: str
    provider: str

    def predict(self, matrix: np.ndarray) -> np.ndarray: ...


def _marked_degrade(messages: Sequence[InboundMessage]) -> np.ndarray | None:
    """Rows the gateway marked for the cheaper fallback (DEGRADE_HEADER), None when none is."""
    marked = [m.header(DEGRADE_HEADER) is not None for m in messages]
    return np.asarray(marked, dtype=bool) if any(marked) else None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class PreparedBatch:
    """Valid requests of a batch with their feature rows; dead letters of the invalid ones."""

    messages: list[InboundMessage]
    requests: list[dict[str, Any]]
    matrix: np.ndarray
    hashes: list[str]
    dead_letters: list[OutboundMessage]
    received: int
    cached_outputs: list[np.ndarray | None] = field(default_factory=list)
    degraded: bool = False
    # token streams (pipeline/core/plugin.py ModelInputs): tokens per row, request per row
    lengths: np.ndarray | None = None
    row_request: np.ndarray | None = None
    fields: dict[str, list[Any]] = field(default_factory=dict)  # preprocessing's result fields
    model_calls: int = 0  # set by infer: token budgets can split a window into several
    routing: Routed | None = None  # set by infer under a routing policy (pipeline/tiers)
    cache_keys: list[str | None] = field(default_factory=list)  # looked up (router's scopes)


@dataclass
class ScoredBatch:
    outbound: list[OutboundMessage]
    scored: int
    dead_lettered: int
    cache_hits: int
    inference_ms: float
    fields: Mapping[str, Any] = field(default_factory=dict)  # the head's result columns
    # the scored requests, in the order of the columns (replay reads them instead of decoding)
    messages: list[InboundMessage] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    cost: BatchCost | None = None  # metered model cost (provenance v4; the cost counter)
    tenants: list[Any] = field(default_factory=list)  # per scored request, when the stream has
    degraded: int = 0  # scored requests flagged degraded


class BatchScorer:
    """One stream's scoring steps, everything stream-specific taken from its plug-in."""

    def __init__(
        self,
        plugin: StreamPlugin,
        topics: StreamTopics,
        model: Model,
        registry: SchemaRegistry,
        cache: OutputCache | None = None,
        worker_id: str | None = None,
        request_ids: RequestIdRule | None = None,
        admission: AdmissionRule | None = None,
        max_batch_tokens: int = 1024,  # Settings.max_batch_tokens
        router: TierRouter | None = None,  # model tiers: which version scores which row
        shadow: Any = None,  # pipeline.tiers.shadow.ShadowScorer: after delivery, off path
        costs: RequestCosts | None = None,  # the cost model (RequestCosts.from_settings)
    ) -> None:
        plugin.check_model(model.manifest)
        self.plugin = plugin
        self.topics = topics
        self.model = model
        self.preprocess = plugin.preprocessor(model.manifest, getattr(model, "directory", None))
        self.head = plugin.head(model.manifest)
        self.admission = admission if plugin.job_field else None  # jobs: cancelled, over budget
        self.max_batch_tokens = max_batch_tokens
        self.cache = cache
        self.request_ids = request_ids  # one id, one request (pipeline/redis/request_ids.py)
        self.worker_id = worker_id or default_worker_id()
        catalog = registry.catalog  # type: ignore[attr-defined]
        # timestamps stay epoch-ms ints: features want ms, building datetimes costs 2x
        self.decode = AvroDeserializer(
            registry, catalog.latest(plugin.request_schema), logical_types=False
        )
        self.encode_result = ColumnEncoder(
            registry, catalog.latest(plugin.result_schema), topics.results
        )
        self.encode_provenance = ColumnEncoder(
            registry, catalog.latest("provenance_record"), topics.provenance
        )
        self._batch_seq = itertools.count(1)
        # a dense stream's tiers (a token stream keeps its one model and its token budgets)
        self.router = router if model.manifest.input.kind == "dense" else None
        self.shadow = shadow
        self.costs = costs or RequestCosts()
        self._tier = tier_defaults(model)

    # -- stage 1: bytes -> feature matrix -------------------------------------------------
    def prepare(self, messages: Sequence[InboundMessage]) -> PreparedBatch:
        failed_at = now_ms()
        dead: list[OutboundMessage] = []
        ok_messages: list[InboundMessage] = []
        requests: list[dict[str, Any]] = []
        for message, decoded in zip(
            messages, self.decode.many(m.value for m in messages), strict=True
        ):
            if isinstance(decoded, DecodeError):
                dead.append(
                    self._dead(message, "decode", decoded.reason, decoded.detail, failed_at)
                )
            elif not message.key:
                dead.append(
                    self._dead(
                        message,
                        "validate",
                        "missing-key",
                        f"no Kafka key; expected the request's {self.plugin.key_field}",
                        failed_at,
                    )
                )
            else:
                ok_messages.append(message)
                requests.append(decoded)
        admission_degraded = False
        if self.admission is not None and requests:
            ok_messages, requests, admission_degraded = self._admitted(
                ok_messages, requests, dead, failed_at
            )
        features = self.preprocess(requests)
        for index, reason in features.errors:
            dead.append(
                self._dead(ok_messages[index], "validate", "invalid-feature", reason, failed_at)
            )
        keep = features.valid_index.tolist()
        matrix = features.matrix
        canonical = getattr(features, "canonical", None)
        prepared = PreparedBatch(
            messages=[ok_messages[i] for i in keep],
            requests=[requests[i] for i in keep],
            matrix=matrix,
            hashes=data_hashes(
                canonical if canonical is not None else self.plugin.canonical_inputs(matrix)
            ),
            dead_letters=dead,
            received=len(messages),
            degraded=admission_degraded,
            lengths=getattr(features, "lengths", None),
            row_request=getattr(features, "row_request", None),
            fields={k: list(v) for k, v in (getattr(features, "fields", None) or {}).items()},
        )
        if self.cache is not None and prepared.hashes:
            if self.router is None:
                cached = self.cache.get_many([self._cache_key(h) for h in prepared.hashes])
            else:  # keyed by what decides the answer under the policy (pipeline/tiers/cached.py)
                keys = [r.get(self.plugin.key_field) for r in prepared.requests]
                prepared.cache_keys, cached = self.router.cache_lookup(
                    self.cache, prepared.hashes, keys
                )
            prepared.degraded = prepared.degraded or cached is None
            prepared.cached_outputs = cached or []
        return prepared

    def _admitted(
        self,
        messages: list[InboundMessage],
        requests: list[dict[str, Any]],
        dead: list[OutboundMessage],
        failed_at: int,
    ) -> tuple[list[InboundMessage], list[dict[str, Any]], bool]:
        """Requests of jobs still running; the others dead-lettered with the job's state."""
        assert self.admission is not None and self.plugin.job_field
        jobs = [r.get(self.plugin.job_field) for r in requests]
        refusals = self.admission.refusals(jobs)
        if refusals is None:  # job store down: admitted, flagged degraded
            return messages, requests, True
        if not any(refusals):
            return messages, requests, False
        kept_messages, kept = [], []
        for message, request, job, refusal in zip(messages, requests, jobs, refusals, strict=True):
            if refusal is None:
                kept_messages.append(message)
                kept.append(request)
            else:
                detail = f"job {job!r} is {refusal.removeprefix('job-')}"
                dead.append(self._dead(message, "admit", refusal, detail, failed_at))
        return kept_messages, kept, False

    def _cache_key(self, data_hash: str) -> str:
        return f"{self.model.manifest.version}:{data_hash}"

    def _dead(
        self, message: InboundMessage, stage: Any, reason: str, detail: str, failed_at: int
    ) -> OutboundMessage:
        return dead_letter(
            message, self.topics.dlq, stage, reason, detail, self.worker_id, failed_at
        )

    # -- stage 2: the model calls ----------------------------------------------------------
    def infer(self, prepared: PreparedBatch, predict: Predict | None = None) -> np.ndarray:
        """Output rows for every request: cache hits filled in, the model run on the misses.

        Dense inputs: one model call. Token inputs: one call per token-budget batch of rows
        (token_budget.py), and the chunks of a request pooled into its row. `predict` is the
        model call (the handler passes one with its timeout and retries).
        """
        n = len(prepared.messages)
        if n == 0:
            return np.empty((0, 0))
        if self.router is not None:  # the policy's tiers, and the hits valid under it
            keys = [r.get(self.plugin.key_field) for r in prepared.requests]
            with_cache = self.cache is not None and bool(prepared.cache_keys)
            prepared.routing = routed = self.router.route(
                prepared.matrix, keys, prepared.hashes if with_cache else None,
                prepared.cached_outputs, prepared.cache_keys, _marked_degrade(prepared.messages),
            )  # fmt: skip
            prepared.cached_outputs = routed.cached_rows  # the hits the router served
            prepared.model_calls = routed.model_calls
            return routed.outputs
        predict = predict or self.model.predict
        cached = prepared.cached_outputs
        miss = (
            np.array([row is None for row in cached]) if cached else np.ones(n, dtype=bool)
        )
        if not miss.any():
            prepared.model_calls = 0
            return np.stack(cached)  # type: ignore[arg-type]
        fresh = self._run(prepared, miss, predict)
        if miss.all():
            return fresh
        outputs = np.empty((n, fresh.shape[1]), dtype=np.float64)
        outputs[miss] = fresh
        for i in np.flatnonzero(~miss).tolist():
            outputs[i] = cached[i]
        return outputs

    def _run(self, prepared: PreparedBatch, miss: np.ndarray, predict: Predict) -> np.ndarray:
        """Output rows of the requests in `miss`, in order."""
        owner, lengths = prepared.row_request, prepared.lengths
        if owner is None and lengths is None:  # dense: one row per request, one call
            prepared.model_calls = 1
            return predict(prepared.matrix if miss.all() else prepared.matrix[miss])
        if owner is None:
            owner = np.arange(len(prepared.matrix))
        rows = np.flatnonzero(miss[owner])
        matrix = prepared.matrix[rows]
        row_lengths = (
            lengths[rows] if lengths is not None else np.full(len(rows), matrix.shape[1])
        )
        outputs, prepared.model_calls = run_by_length(
            predict, matrix, row_lengths, self.max_batch_tokens
        )
        # requests renumbered among the misses, then each one's rows pooled
        renumbered = np.cumsum(miss) - 1
        return pool_rows(outputs, renumbered[owner[rows]], row_lengths, int(miss.sum()))

    # -- stage 3: outputs -------------------------------------------------------------------
    def publishable(
        self,
        prepared: PreparedBatch,
        outputs: np.ndarray,
        inference_started_ms: int,
        inference_ms: float,
        cut: str = "",
        wait_ms: float = 0.0,
    ) -> ScoredBatch:
        if self.request_ids is not None and prepared.messages:
            # here, on the encode stage, the Redis round trip overlaps the next batch's decode
            prepared, outputs = self._without_reused_ids(prepared, outputs)
        n = len(prepared.messages)
        batch_id = f"{self.worker_id}-{next(self._batch_seq)}"
        served_at = now_ms()
        manifest = self.model.manifest
        hits = [row is not None for row in prepared.cached_outputs] or [False] * n
        outbound = list(prepared.dead_letters)
        if not n:
            return ScoredBatch(outbound, 0, len(outbound), 0, inference_ms)
        plugin = self.plugin
        routing = prepared.routing
        degraded: Any = prepared.degraded
        if routing is None:
            tier = {"model_version": manifest.version, "model_sha256": self.model.sha256,
                    **self._tier}  # fmt: skip
            tier_columns: dict[str, Any] = {}
            fields = {**prepared.fields, **self.head(outputs)}
        else:
            tier, tier_columns = routing.tier_values()
            fields = {**prepared.fields, **routing.fields}
            if not degraded:  # rows the fallback served (pipeline/tiers/cascade.py)
                degraded = routing.degraded
        # one flag for the batch stays a constant, encoded once; per-row flags are a column
        flag_constant = {} if isinstance(degraded, list) else {"degraded": bool(degraded)}
        flag_column = {"degraded": degraded} if isinstance(degraded, list) else {}
        degraded_rows = (
            sum(degraded) if isinstance(degraded, list) else n if degraded else 0
        )
        messages, requests = prepared.messages, prepared.requests
        tenant = plugin.tenant_field
        tenants = [r.get(tenant) for r in requests] if tenant else [None] * n
        request_ids = [r["request_id"] for r in requests]
        cost = self.costs.of_batch(
            self.model, inference_ms / 1000.0 if prepared.model_calls else 0.0, n,
            hits if any(hits) else None, routing.cost_units if routing is not None else None,
        )  # fmt: skip
        stamps = np.fromiter((m.timestamp_ms for m in messages), dtype=np.int64, count=n)
        # fields with one value per batch are encoded once (pipeline/codec/columns.py)
        results = self.encode_result.encode(
            {
                "model_name": manifest.name,
                "served_at": served_at,
                **flag_constant,
                **tier,
            },
            {
                **tier_columns,
                **flag_column,
                "request_id": request_ids,
                "key": [r.get(plugin.key_field) for r in requests],
                "tenant": tenants,
                "latency_ms": (served_at - stamps).astype(np.float64),
                **fields,
            },
        )
        provenance = self.encode_provenance.encode(
            {
                **tier,
                "model_name": manifest.name,
                "preprocessing_version": manifest.preprocessing_version,
                "pipeline_version": __version__,
                "execution_provider": self.model.provider,
                "batch_id": batch_id,
                "batch_size": n,
                "batch_cut": cut,
                "batch_wait_ms": wait_ms,
                "inference_ms": inference_ms,
                **flag_constant,
                "served_at": served_at,
                **cost.constants,
            },
            {
                "request_id": request_ids,
                "data_hash": prepared.hashes,
                "source_topic": [m.topic for m in messages],
                "source_partition": [m.partition for m in messages],
                "source_offset": [m.offset for m in messages],
                "source_timestamp": stamps,
                "queue_wait_ms": np.maximum(0, inference_started_ms - stamps).astype(np.float64),
                "cache_hit": hits,
                **tier_columns,
                **flag_column,
                **cost.columns,
            },
        )
        results_topic, provenance_topic = self.topics.results, self.topics.provenance
        passed = plugin.passed_headers
        for message, request_id, result, record in zip(
            messages, request_ids, results, provenance, strict=True
        ):
            id_bytes = request_id.encode()
            headers = [("request_id", id_bytes)]
            for name, value in message.headers:
                if name in passed:
                    headers.append((name, value))
            outbound.append(OutboundMessage(results_topic, message.key, result, headers))
            outbound.append(OutboundMessage(provenance_topic, id_bytes, record, headers))
        if self.cache is not None and not prepared.degraded and routing is None:
            misses = [i for i, hit in enumerate(hits) if not hit]
            if misses:
                self.cache.put_many(
                    [self._cache_key(prepared.hashes[i]) for i in misses], outputs[misses]
                )
        elif self.cache is not None and not prepared.degraded and routing is not None:
            from pipeline.tiers.cached import entries

            for keys, rows in entries(routing):
                self.cache.put_many(keys, rows)
        if self.shadow is not None:  # runs once `outbound` is delivered (assembly's deliver)
            outbound = self.shadow.attach(
                outbound, prepared, outputs, fields, tier, tier_columns, served_at, inference_ms
            )
        return ScoredBatch(
            outbound, n, len(prepared.dead_letters), sum(hits), inference_ms, fields,
            messages, request_ids, prepared.hashes, cost, tenants if tenant else [],
            degraded_rows,
        )  # fmt: skip

    def _without_reused_ids(
        self, prepared: PreparedBatch, outputs: np.ndarray
    ) -> tuple[PreparedBatch, np.ndarray]:
        """Dead-letter requests whose id a different payload already holds (request_ids.py)."""
        assert self.request_ids is not None
        conflicts = self.request_ids.conflicts(
            [r["request_id"] for r in prepared.requests], [m.value for m in prepared.messages]
        )
        if conflicts is None:  # Redis down: the rule is not applied, results are flagged
            prepared.degraded = True
            return prepared, outputs
        if not any(conflicts):
            return prepared, outputs
        failed_at = now_ms()
        dead = list(prepared.dead_letters)
        for message, request, conflict in zip(
            prepared.messages, prepared.requests, conflicts, strict=True
        ):
            if conflict:
                detail = (
                    f"request_id {request['request_id']!r} was already used by a different request"
                )
                dead.append(
                    self._dead(message, "validate", "duplicate-request-id", detail, failed_at)
                )
        keep = ~np.asarray(conflicts)
        index = np.flatnonzero(keep).tolist()
        filtered = PreparedBatch(
            messages=[prepared.messages[i] for i in index],
            requests=[prepared.requests[i] for i in index],
            # after the model ran: only dense rows (one per request) are kept in step
            matrix=prepared.matrix[keep] if prepared.row_request is None else prepared.matrix,
            hashes=[prepared.hashes[i] for i in index],
            dead_letters=dead,
            received=prepared.received,
            cached_outputs=[prepared.cached_outputs[i] for i in index]
            if prepared.cached_outputs
            else [],
            degraded=prepared.degraded,
            fields={name: [values[i] for i in index] for name, values in prepared.fields.items()},
            routing=prepared.routing.take(keep) if prepared.routing is not None else None,
        )
        return filtered, np.asarray(outputs)[keep]

    def dead_letter_batch(self, prepared: PreparedBatch, reason: str, detail: str) -> ScoredBatch:
        """The model failed for good: every valid request of the batch goes to the DLQ."""
        failed_at = now_ms()
        outbound = list(prepared.dead_letters)
        outbound += [self._dead(m, "model", reason, detail, failed_at) for m in prepared.messages]
        return ScoredBatch(outbound, 0, len(outbound), 0, 0.0)
