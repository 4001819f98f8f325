"""The drift handler: a DriftMonitor as engine stages, in its own consumer group.

    prepare (decode, features) -> detect (detector update, alert transitions) -> deliver

Detector state goes to Redis at most once per `checkpoint_every_s` while rows arrive, as soon
as an alert transition is delivered, and when the handler closes; `checkpoint_if_due` lets a timer
save the last rows of a stream that went quiet. Updates and checkpoints share one lock, so a
snapshot never sees a half-applied batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pipeline.core.batch import Batch
from pipeline.core.handler import Stage
from pipeline.core.messages import OutboundMessage
from pipeline.drift.monitor import DriftMonitor, DriftRows

Deliver = Callable[[Sequence[OutboundMessage]], None]


class DriftHandler:
    def __init__(
        self, monitor: DriftMonitor, deliver: Deliver, checkpoint_every_s: float = 1.0
    ) -> None:
        self.name = f"drift-{monitor.plugin.name}"
        self.monitor = monitor
        self.deliver = deliver
        self.checkpoint_every_s = checkpoint_every_s
        self.rows = 0
        self._lock = threading.Lock()
        self._dirty = False
        self._last_checkpoint = time.monotonic()

    def stages(self) -> list[Stage]:
        return [
            Stage("prepare", self.prepare),
            Stage("detect", self.detect),
            Stage("deliver", self.publish),
        ]

    def prepare(self, batch: Batch) -> DriftRows:
        return self.monitor.featurize(batch.messages)

    def detect(self, rows: DriftRows) -> list[OutboundMessage]:
        with self._lock:
            alerts = self.monitor.update(rows)
            self.rows += len(rows.matrix)
            self._dirty = True
        return alerts

    def publish(self, alerts: list[OutboundMessage]) -> None:
        if alerts:
            self.deliver(alerts)
            # after delivery: a saved "alert open" whose alert was never sent would hide it
            with self._lock:
                self._checkpoint()
        else:
            self.checkpoint_if_due()

    def checkpoint_if_due(self) -> None:
        if self._dirty and time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
            with self._lock:
                self._checkpoint()

    def _checkpoint(self) -> None:
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self.monitor.checkpoint()

    def close(self) -> None:
        with self._lock:
            if self._dirty:
                self._checkpoint()
