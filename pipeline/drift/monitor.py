"""Drift monitoring of a stream's requests: decode, featurise, feed the detector, emit alerts.

Transport-independent like the scorer: the drift handler (pipeline/drift/handler.py) runs it
as engine stages and publishes what it returns. Invalid requests are skipped here (the scoring
handler dead-letters them); the detector state is checkpointed to Redis so a restart keeps its
windows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from pipeline.codec import AvroDeserializer, AvroSerializer, DecodeError, SchemaRegistry
from pipeline.core.exceptions import PluginError
from pipeline.core.messages import InboundMessage, OutboundMessage
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics, drift_alerts_topic
from pipeline.drift import AlertEvent, AlertState, DriftConfig, DriftDetector, Reference
from pipeline.drift.config import config_for_reference
from pipeline.drift.diurnal import DiurnalWatch, hours_from_cyclic
from pipeline.scoring.scorer import now_ms

log = logging.getLogger("inferstream.drift")


@dataclass(frozen=True)
class DriftRows:
    """A batch's monitored feature columns, with the source offsets and timestamps of its rows."""

    matrix: np.ndarray
    offsets: np.ndarray
    timestamps_ms: np.ndarray
    hours: np.ndarray | None = None  # hour of day per row, when the model has a cyclic pair


def cyclic_pair(feature_names: Sequence[str], stem: str = "hour") -> tuple[int, int] | None:
    """Columns of `<stem>_sin` and `<stem>_cos` (time of day on the unit circle), if present."""
    names = list(feature_names)
    if f"{stem}_sin" in names and f"{stem}_cos" in names:
        return names.index(f"{stem}_sin"), names.index(f"{stem}_cos")
    return None


def monitored_columns(feature_names: Sequence[str], exempt: Collection[str]) -> np.ndarray:
    return np.array([i for i, name in enumerate(feature_names) if name not in exempt])


def reference_for(model: Any, columns: np.ndarray) -> Reference:
    """The model's reference sample of inputs (monitored columns), with their feature names."""
    names = model.manifest.feature_names
    return Reference.from_rows(model.reference[:, columns], [names[i] for i in columns])


class StateStore(Protocol):
    """Where checkpoints go (pipeline/redis/state.py); None from `get` when unavailable."""

    def put(self, key: str, blob: bytes) -> bool: ...

    def get(self, key: str) -> bytes | None: ...


class DriftMonitor:
    def __init__(
        self,
        plugin: StreamPlugin,
        topics: StreamTopics,
        model: Any,
        registry: SchemaRegistry,
        store: StateStore | None,
        calibration_cache: Any = None,
        config: DriftConfig | None = None,
    ) -> None:
        plugin.check_model(model.manifest)
        self.plugin = plugin
        self.topics = topics
        self.model_name = model.manifest.name
        self.model_version = model.manifest.version
        if model.manifest.input.kind != "dense":
            raise PluginError(
                f"stream {plugin.name!r}: model {model.manifest.name} takes "
                f"{model.manifest.input.kind}, not numeric features; nothing to test for drift"
            )
        self.build_features = plugin.preprocessor(model.manifest, getattr(model, "directory", None))
        self.store = store
        catalog = registry.catalog  # type: ignore[attr-defined]
        self.decode = AvroDeserializer(registry, catalog.latest(plugin.request_schema))
        self.alerts_topic = drift_alerts_topic(topics.namespace)
        self.encode_alert = AvroSerializer(
            registry, catalog.latest("drift_alert"), self.alerts_topic
        )
        self.columns = monitored_columns(model.manifest.feature_names, plugin.drift_exempt)
        reference = reference_for(model, self.columns)
        self.checkpoint_key = f"{topics.prefix}:{self.model_version}:{reference.version}"
        # a reference in arrival order calibrates by block bootstrap (manifest reference.order)
        config = config_for_reference(model.manifest.reference.order, config)
        self.detector = self._restore(reference, calibration_cache, config)
        # time of day is exempt from the row windows (it is not stationary over minutes) and
        # watched a day at a time instead (pipeline/drift/diurnal.py)
        self.hour_columns = cyclic_pair(model.manifest.feature_names)
        self.diurnal = self._diurnal(model, reference, config)
        self.open_alerts: dict[str, dict[str, Any]] = self._saved_open_alerts()
        self.skipped = 0

    def _diurnal(
        self, model: Any, reference: Reference, config: DriftConfig | None
    ) -> DiurnalWatch | None:
        if self.hour_columns is None:
            return None
        sin, cos = self.hour_columns
        watch = DiurnalWatch(
            hours_from_cyclic(model.reference[:, sin], model.reference[:, cos]),
            reference.version,
            config or self.detector.config,
            tests=reference.n_features + 1,
        )
        blob = self.store.get(f"diurnal:{self.checkpoint_key}") if self.store else None
        if blob and self.detector.rows_seen:
            try:
                watch.load(json.loads(blob))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("diurnal checkpoint unusable, starting fresh: %s", exc)
        return watch

    def _saved_open_alerts(self) -> dict[str, dict[str, Any]]:
        blob = self.store.get(f"status:{self.checkpoint_key}") if self.store else None
        if not blob or not self.detector.rows_seen:
            return {}
        return {a["feature"]: a for a in json.loads(blob).get("open_alerts", [])}

    def _restore(
        self, reference: Reference, cache: Any, config: DriftConfig | None
    ) -> DriftDetector:
        blob = self.store.get(f"checkpoint:{self.checkpoint_key}") if self.store else None
        if blob:
            try:
                detector = DriftDetector.restore(reference, blob, cache, config)
                log.info("drift detector restored", extra={"rows_seen": detector.rows_seen})
                return detector
            except (ValueError, KeyError) as exc:
                log.warning("drift checkpoint unusable, starting fresh: %s", exc)
        return DriftDetector(reference, config, cache)

    def featurize(self, messages: Sequence[InboundMessage]) -> DriftRows:
        """Decode and featurise; undecodable or invalid requests are counted and skipped."""
        requests, offsets, stamps = [], [], []
        for message, decoded in zip(
            messages, self.decode.many(m.value for m in messages), strict=True
        ):
            if isinstance(decoded, DecodeError):
                self.skipped += 1
                continue
            requests.append(decoded)
            offsets.append(message.offset)
            stamps.append(message.timestamp_ms)
        features = self.build_features(requests)
        self.skipped += len(features.errors)
        keep = features.valid_index
        hours = None
        if self.hour_columns is not None and len(features.matrix):
            sin, cos = self.hour_columns
            hours = hours_from_cyclic(features.matrix[:, sin], features.matrix[:, cos])
        return DriftRows(
            features.matrix[:, self.columns] if len(features.matrix) else features.matrix,
            np.asarray(offsets, dtype=np.int64)[keep] if len(keep) else np.empty(0, np.int64),
            np.asarray(stamps, dtype=np.int64)[keep] if len(keep) else np.empty(0, np.int64),
            hours,
        )

    def update(self, rows: DriftRows) -> list[OutboundMessage]:
        """Feed the detector; the alert transitions it reports, ready to publish."""
        if not len(rows.matrix):
            return []
        events = self.detector.update(rows.matrix, rows.offsets, rows.timestamps_ms)
        if self.diurnal is not None and rows.hours is not None:
            events += self.diurnal.update(rows.hours, rows.offsets, rows.timestamps_ms)
        return [self._publishable(event) for event in events]

    def process(self, messages: Sequence[InboundMessage]) -> list[OutboundMessage]:
        return self.update(self.featurize(messages))

    def _publishable(self, event: AlertEvent) -> OutboundMessage:
        record = event.to_avro_dict(self.plugin.name, self.model_name, self.model_version, now_ms())
        if event.state == AlertState.RESOLVED:
            self.open_alerts.pop(event.feature, None)
        else:
            # the full label (with the block length): `drift status` shows it
            self.open_alerts[event.feature] = {**record, "calibration": event.calibration}
        log.warning(
            "drift %s",
            record["state"],
            extra={
                "feature": event.feature,
                "z": round(event.z, 2),
                "statistic": event.statistic,
                "calibration": event.calibration,
            },
        )
        key = f"{self.plugin.name}/{self.model_name}/{event.feature}".encode()
        return OutboundMessage(self.alerts_topic, key, self.encode_alert(record), [])

    def checkpoint(self) -> bool:
        """Detector state and a status summary to Redis; False when Redis is unavailable."""
        if self.store is None:
            return False
        saved = self.store.put(f"checkpoint:{self.checkpoint_key}", self.detector.snapshot())
        if self.diurnal is not None:
            state = json.dumps(self.diurnal.state()).encode()
            self.store.put(f"diurnal:{self.checkpoint_key}", state)
        kinds = sorted(set(self.detector.calibration))
        status = {
            "stream": self.plugin.name,
            "model": f"{self.model_name}:{self.model_version}",
            "reference_version": self.detector.reference.version,
            "rows_seen": self.detector.rows_seen,
            "skipped_invalid": self.skipped,
            "updated_at": time.time(),
            "calibration": ", ".join(kinds),
            "features": [_stat_dict(s) for s in self.detector.stats()],
            "diurnal": asdict(self.diurnal.stat()) if self.diurnal is not None else None,
            "open_alerts": list(self.open_alerts.values()),
        }
        self.store.put(f"status:{self.checkpoint_key}", json.dumps(status).encode())
        return saved


def _stat_dict(stat: Any) -> dict[str, Any]:
    out = asdict(stat)
    out["test"] = str(stat.test)
    out["windows"] = {str(w): v for w, v in stat.windows.items()}
    return out
