"""The drift agent: `<stream>.requests` in its own consumer group -> `drift.alerts`.

Its own Faust app (app id `<app_id>-drift`), so a slow detector never holds back scoring's
offsets or buffers. Detector state is checkpointed to Redis once a second while rows arrive,
and at once after an alert transition.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import faust

from agents.scoring import to_inbound
from pipeline.drift_monitor import DriftMonitor
from pipeline.scoring import OutboundMessage

log = logging.getLogger("inferstream.agent")


def register_drift_agent(
    app: faust.App,
    monitor: DriftMonitor,
    batch_max: int = 1000,
    window_s: float = 0.1,
    checkpoint_every_s: float = 1.0,
) -> None:
    spec = monitor.spec
    source = app.topic(spec.requests, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(
        monitor.alerts_topic, key_serializer="raw", value_serializer="raw", partitions=1
    )
    # one thread: detector updates and checkpoints never run at the same time
    thread = ThreadPoolExecutor(1, thread_name_prefix="inferstream-drift")
    state = {"dirty": False}

    async def publish(messages: list[OutboundMessage]) -> None:
        pending = [await alerts.send(key=m.key, value=m.value) for m in messages]
        await asyncio.gather(*pending)

    async def checkpoint() -> None:
        state["dirty"] = False
        await asyncio.get_running_loop().run_in_executor(thread, monitor.checkpoint)

    @app.timer(interval=checkpoint_every_s)
    async def checkpoint_if_changed() -> None:
        if state["dirty"]:
            await checkpoint()

    @app.agent(source, name=f"drift-{spec.name}", concurrency=1)
    async def watch(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(batch_max, within=window_s):
            messages = [to_inbound(event) for event in events]
            try:
                outbound = await loop.run_in_executor(thread, monitor.process, messages)
                await publish(outbound)
                state["dirty"] = True
                if outbound:  # alert transitions are checkpointed at once
                    await checkpoint()
            except Exception:
                log.critical("drift batch failed; exiting before its ack", exc_info=True)
                logging.shutdown()
                os._exit(70)
