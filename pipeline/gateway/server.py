"""Building and running the gateway process: intakes, Redis, producer, indexer, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from pipeline.assembly import group_id as scoring_group_id
from pipeline.assembly import redis_client
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.gateway.app import Gateway, make_app
from pipeline.gateway.breaker import CircuitBreaker
from pipeline.gateway.exceptions import GatewayError
from pipeline.gateway.index import Notifier, ResultIndexer, StatusStore
from pipeline.gateway.intake import StreamIntake
from pipeline.gateway.keys import redis_prefix
from pipeline.gateway.limits import Limits
from pipeline.gateway.producer import GatewayProducer
from pipeline.gateway.shedding import LagMonitor
from pipeline.logs import lifecycle_event
from pipeline.metrics.gateway import GatewayMetrics
from pipeline.metrics.targets import remove_target, targets_dir, write_target

log = logging.getLogger("inferstream.gateway")


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}{settings.app_id}-gateway"


def build_gateway(
    settings: Settings, streams: Sequence[str], model_version: str | None = None
) -> Gateway:
    registry = registry_from_settings(settings)
    redis = redis_client(settings)  # the process's password and TLS settings apply
    try:
        intakes = {
            name: StreamIntake(settings, get_plugin(name), registry, redis, model_version)
            for name in streams
        }
    except Exception as exc:  # a missing model directory, a manifest for other features
        if isinstance(exc, GatewayError):
            raise
        raise GatewayError(f"cannot serve {', '.join(streams)}: {exc}") from None
    prefix = redis_prefix(settings.topic_namespace)
    producer = GatewayProducer(settings, {n: i.topics for n, i in intakes.items()})
    status = StatusStore(redis, prefix, settings.gateway_status_ttl_s)
    limits = Limits(redis, prefix)
    indexer = ResultIndexer(
        settings,
        group_id(settings),
        [i.plugin for i in intakes.values()],
        settings.topic_namespace,
        registry,
        status,
        limits,
    )
    lag = None
    if settings.gateway_shed_wait_s > 0:
        requests = {name: intake.topics.requests for name, intake in intakes.items()}
        lag = LagMonitor(settings, scoring_group_id(settings, "score"), requests)
    gateway = Gateway(
        lag=lag,
        settings=settings,
        intakes=intakes,
        redis=redis,
        limits=limits,
        status=status,
        producer=producer,
        kafka_breaker=CircuitBreaker(
            "kafka", settings.gateway_breaker_failures, settings.gateway_breaker_reset_s
        ),
        indexer=indexer,
    )
    if settings.metrics == "on":
        gateway.metrics = gateway_metrics(gateway, streams)
        indexer.on_cost = gateway.cost
    return gateway


def gateway_metrics(gateway: Gateway, streams: Sequence[str]) -> GatewayMetrics:
    from pipeline import __version__

    metrics = GatewayMetrics(gateway.settings.metrics_top_tenants)
    metrics.families.info.labels(__version__, "gateway", ",".join(streams)).set(1)
    metrics.families.ready.labels("gateway").set(0)
    metrics.watch(gateway.redis, gateway.breakers)
    return metrics


def list_target(gateway: Gateway, host: str, port: int) -> Path | None:
    """The gateway's /metrics in the file_sd targets directory (role gateway), as the
    workers list theirs; None when the directory is not writable (logged)."""
    s = gateway.settings
    directory = Path(s.metrics_targets_dir or targets_dir(s.state_dir))
    address = f"{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{port}"
    try:
        return write_target(directory, address, {"role": "gateway", "app": s.app_id})
    except OSError as exc:
        log.warning("could not write the Prometheus targets file: %s", exc)
        return None


async def serve(gateway: Gateway, host: str, port: int) -> None:
    """Serve until SIGTERM / SIGINT; prints a `ready` JSON line once listening and indexing."""
    app = make_app(gateway)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    target = list_target(gateway, host, bound) if gateway.metrics is not None else None
    gateway.indexer.start()
    if gateway.lag is not None:
        gateway.lag.start()
    loop = asyncio.get_running_loop()
    gateway.notifier = Notifier(gateway.redis, gateway.status.channel).start(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # ready once the result index has its partitions (or after 10 s, saying so)
    for _ in range(100):
        if gateway.indexer.assigned.is_set() or stop.is_set():
            break
        await asyncio.sleep(0.1)
    if gateway.metrics is not None:
        gateway.metrics.families.ready.labels("gateway").set(1)
    lifecycle_event(
        "ready",
        "gateway listening",
        host=host,
        port=bound,
        streams=sorted(gateway.intakes),
        result_index="assigned" if gateway.indexer.assigned.is_set() else "waiting",
    )
    try:
        await stop.wait()
    finally:
        if target is not None:
            remove_target(target)
        await runner.cleanup()
        await loop.run_in_executor(None, gateway.indexer.stop)
        await loop.run_in_executor(None, gateway.notifier.stop)
        if gateway.lag is not None:
            await loop.run_in_executor(None, gateway.lag.stop)
        await loop.run_in_executor(None, gateway.producer.close)
        gateway.redis_pool.shutdown(wait=False)
