"""Building and running the gateway process: intakes, Redis, producer, indexer, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Sequence

from aiohttp import web

from pipeline.assembly import group_id as scoring_group_id
from pipeline.assembly import redis_client
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.breaker import CircuitBreaker
from pipeline.core.registry import get_plugin
from pipeline.gateway.app import Gateway, make_app
from pipeline.gateway.exceptions import GatewayError
from pipeline.gateway.index import Notifier, ResultIndexer, StatusStore
from pipeline.gateway.intake import StreamIntake
from pipeline.gateway.keys import redis_prefix
from pipeline.gateway.limits import Limits
from pipeline.gateway.producer import GatewayProducer
from pipeline.gateway.shedding import LagMonitor
from pipeline.logs import lifecycle_event
from pipeline.metrics import ProcessMetrics
from pipeline.metrics.gateway import GatewayMetrics


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
            "kafka", settings.gateway_breaker_failures, settings.gateway_breaker_reset_s,
            logger="inferstream.gateway",
        ),
        indexer=indexer,
    )
    if settings.metrics == "on":
        # the workers' process metrics (registry, /metrics server, targets file), role gateway
        gateway.process_metrics = ProcessMetrics(settings, "gateway", list(streams))
        gateway.metrics = GatewayMetrics(
            gateway.process_metrics.registry, settings.metrics_top_tenants
        )
        gateway.metrics.watch(redis, gateway.breakers)
        indexer.on_cost = gateway.cost
    return gateway


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
    process_metrics = gateway.process_metrics
    metrics_url = process_metrics.serve() if process_metrics is not None else None
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
    # what start-up built (modules, schemas, the model, clients: ~60k objects) lives as long
    # as the process; frozen, a full collection no longer walks it - one took 20-30 ms here,
    # a stall of the event loop longer than the submit latency target
    gc.collect()
    gc.freeze()
    if process_metrics is not None:
        process_metrics.set_ready()
    lifecycle_event(
        "ready",
        "gateway listening",
        host=host,
        port=bound,
        streams=sorted(gateway.intakes),
        result_index="assigned" if gateway.indexer.assigned.is_set() else "waiting",
        metrics=metrics_url,
    )
    try:
        await stop.wait()
    finally:
        if process_metrics is not None:
            process_metrics.close()
        await runner.cleanup()
        await loop.run_in_executor(None, gateway.indexer.stop)
        await loop.run_in_executor(None, gateway.notifier.stop)
        if gateway.lag is not None:
            await loop.run_in_executor(None, gateway.lag.stop)
        await loop.run_in_executor(None, gateway.producer.close)
        gateway.redis_pool.shutdown(wait=False)
