"""An engine as a service of the Faust worker: started with it, stopped gracefully with it."""

from __future__ import annotations

import asyncio

from mode import Service

from pipeline.engine import Engine
from pipeline.logs import lifecycle_event


class EngineService(Service):
    """On stop (SIGTERM, SIGINT), in-flight batches are delivered and committed first."""

    def __init__(self, engine: Engine, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.engine = engine

    @property
    def label(self) -> str:
        return f"engine {self.engine.config.name}"

    async def on_start(self) -> None:
        self.engine.start()

    async def on_stop(self) -> None:
        # joining the engine's thread blocks: not on the event loop
        engine = self.engine
        clean = await asyncio.get_running_loop().run_in_executor(None, engine.stop)
        lifecycle_event(
            "engine-stopped",
            "engine stopped" if clean else "engine did not stop cleanly",
            engine=engine.config.name,
            clean=clean,
            batches=engine.stats.batches,
            events=engine.stats.events,
        )
