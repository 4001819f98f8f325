"""The `--processes N` supervisor's own `/metrics`: how often it restarted each child.

A child cannot count its own restarts (its counters start at 0 with it), so the supervisor,
which outlives its children, serves `inferstream_worker_restarts_total{stream,child}` on a
MetricsServer of its own and lists it in the same file_sd targets directory as the children
(target label `role="<role>-supervisor"`), so the one Prometheus job scrapes it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector

from pipeline.metrics.families import HELP, name
from pipeline.metrics.http import MetricsServer
from pipeline.metrics.targets import prune, remove_target, targets_dir, write_target

log = logging.getLogger("inferstream.metrics")


class SupervisorMetrics:
    def __init__(self, settings: Any, role: str, streams: Sequence[str], processes: int) -> None:
        from prometheus_client import disable_created_metrics

        disable_created_metrics()
        self.settings, self.role, self.streams = settings, role, list(streams)
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        short = "worker_restarts_total"
        self._restarts = Counter(
            name(short.removesuffix("_total")), HELP[short], ("stream", "child"),
            registry=self.registry,
        )  # fmt: skip
        # every slot's series exists from the start at 0: increase() sees the first restart
        self._children = [
            [self._restarts.labels(stream, str(i)) for stream in self.streams]
            for i in range(processes)
        ]
        self.server: MetricsServer | None = None
        self._target: Path | None = None

    def restarted(self, index: int) -> None:
        for child in self._children[index]:
            child.inc()

    def serve(self) -> str:
        s = self.settings
        # always a free port: a fixed INFERSTREAM_METRICS_PORT stays the (first) child's
        server = MetricsServer(self.registry, s.metrics_bind, 0)
        self.server = server.start()
        directory = Path(s.metrics_targets_dir or targets_dir(s.state_dir))
        labels = {"role": f"{self.role}-supervisor", "app": s.app_id}
        try:
            self._target = write_target(directory, f"{server.host}:{server.port}", labels)
        except OSError as exc:
            log.warning("could not write the Prometheus targets file: %s", exc)
        return server.url

    def unlist(self) -> None:
        """Out of the targets directory: called as the stop begins, since the children may take
        longer to stop than whoever stops the supervisor waits (and then kills it)."""
        if self._target is not None:
            remove_target(self._target)
            prune(self._target.parent)  # the files of children killed meanwhile
            self._target = None

    def close(self) -> None:
        self.unlist()
        if self.server is not None:
            self.server.close()
            self.server = None
