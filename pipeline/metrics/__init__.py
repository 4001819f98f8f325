"""Prometheus metrics of a worker process: one registry, the families (families.py), the
instruments the engine and handlers call per batch (observer.py), `/metrics` + `/ui`
(http.py) and the file_sd targets Prometheus discovers them by (targets.py).

The core packages never import this: the engine and handlers take an optional `observer`
with plain methods, and `ProcessMetrics.attach` hands them one.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from pipeline.metrics.families import Families, new_registry
from pipeline.metrics.http import MetricsServer
from pipeline.metrics.observer import (
    DriftCollector,
    EngineObserver,
    LagCollector,
    RedisCollector,
    ScoringObserver,
)
from pipeline.metrics.targets import remove_target, targets_dir, write_target

log = logging.getLogger("inferstream.metrics")

__all__ = ["EngineObserver", "Families", "ProcessMetrics", "ScoringObserver"]


class ProcessMetrics:
    """The metrics of one process: built once, engines and handlers attached, then served."""

    def __init__(self, settings: Any, role: str, streams: list[str]) -> None:
        from pipeline import __version__

        self.settings = settings
        self.role = role
        self.registry, self.families = new_registry()
        self.observers: dict[str, EngineObserver] = {}
        self.drift_handlers: dict[str, Any] = {}
        self.server: MetricsServer | None = None
        self._target: Path | None = None
        self.families.info.labels(__version__, role, ",".join(streams)).set(1)
        self.families.ready.labels(role).set(0)
        self.registry.register(LagCollector(self.observers))
        self.registry.register(DriftCollector(self.drift_handlers))

    def attach(self, stream: str, engine: Any, handler: Any, plugin: Any = None) -> None:
        """Give `engine` and `handler` their observers (a handler without the hook is fine)."""
        engine.observer = self.observers[stream] = EngineObserver(self.families, stream, engine)
        if hasattr(handler, "monitor"):
            self.drift_handlers[stream] = handler
        breakers = getattr(handler, "breakers", None)
        if breakers is not None:  # the model breakers (pipeline/scoring/model_calls.py)
            from pipeline.metrics.breakers import BreakerCollector

            self.registry.register(
                BreakerCollector(
                    lambda: {(stream, v): b for v, b in breakers.by_version().items()},
                    "model_breaker",
                    ("stream", "version"),
                    "the worker's breaker for the model version",
                )
            )
        if hasattr(handler, "scorer"):
            s = self.settings
            handler.observer = ScoringObserver(
                self.families,
                stream,
                tenant_field=getattr(plugin or handler.scorer.plugin, "tenant_field", None),
                top_tenants=s.metrics_top_tenants,
            )

    def watch_redis(self, redis: Any) -> None:
        self.registry.register(RedisCollector(redis))

    def set_ready(self) -> None:
        self.families.ready.labels(self.role).set(1)

    def serve(self) -> str:
        """Start /metrics on the configured address; its URL."""
        s = self.settings
        try:
            server = MetricsServer(self.registry, s.metrics_bind, s.metrics_port)
        except OSError as exc:
            if s.metrics_port == 0:
                raise
            # e.g. a second `--processes N` child on the same fixed port: any free port instead
            log.warning("metrics port %d unavailable (%s); using a free port", s.metrics_port, exc)
            server = MetricsServer(self.registry, s.metrics_bind, 0)
        self.server = server.start()
        address = f"{self.server.host}:{self.server.port}"
        directory = s.metrics_targets_dir or targets_dir(s.state_dir)
        try:
            self._target = write_target(
                Path(directory), address, {"role": self.role, "app": s.app_id}
            )
            atexit.register(self.close)
        except OSError as exc:  # no targets file: Prometheus needs a static target then
            log.warning("could not write the Prometheus targets file: %s", exc)
        return self.server.url

    def close(self) -> None:
        if self._target is not None:
            remove_target(self._target)
            self._target = None
        if self.server is not None:
            self.server.close()
            self.server = None
