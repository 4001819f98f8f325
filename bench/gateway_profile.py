"""Where one gateway POST spends its time: the gateway built in-process (the real app, Redis,
broker and result index), a real aiohttp client on loopback sending single-request POSTs (or
lists of `--list-size` requests per POST) from `--concurrency` connections, under cProfile
(the event loop and the gateway's thread pools); prints the top functions by own and
cumulative time and the CPU-milliseconds per request of the whole process (client included).
The stack must be up. Run: `python -m bench.gateway_profile`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from pipeline.cli import Parser, positive_int
from pipeline.redis.state import scan_keys

PROG = "python -m bench.gateway_profile"


class ThreadProfiles:
    """cProfile of the work the gateway hands to its thread pools (cProfile only sees the
    thread that enables it): each pool's `submit` runs its function under a profile of its
    own thread while `on` is set; `stats` merges them with the event loop's."""

    def __init__(self) -> None:
        self.on = False
        self._local = threading.local()
        self._all: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def wrap(self, pool: ThreadPoolExecutor) -> None:
        submit = pool.submit

        def profiled_submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return submit(self._run, fn, *args, **kwargs)

        pool.submit = profiled_submit  # type: ignore[method-assign]

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.on:
            return fn(*args, **kwargs)
        profile = getattr(self._local, "profile", None)
        if profile is None:
            profile = self._local.profile = cProfile.Profile()
            with self._lock:
                self._all.append(profile)
        return profile.runcall(fn, *args, **kwargs)

    def stats(self, main: cProfile.Profile, out: io.StringIO) -> pstats.Stats:
        stats = pstats.Stats(main, stream=out)
        for profile in self._all:
            stats.add(profile)
        return stats


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=positive_int, default=3000)
    p.add_argument("--concurrency", type=positive_int, default=32)
    p.add_argument(
        "--list-size",
        type=positive_int,
        default=1,
        help="requests per POST (default 1: one request, not a list)",
    )
    p.add_argument("--top", type=positive_int, default=35, help="rows of the profile")
    p.add_argument("--no-profile", action="store_true", help="CPU time only, no cProfile")
    p.add_argument(
        "--throttled",
        action="store_true",
        help="a key over its rate limit: every POST after the first is a 429 (what a"
        " flooding tenant costs)",
    )
    return p


async def _run(
    args: argparse.Namespace,
    settings: Any,
    key: str,
    slow_key: str,
    warm: list[Any],
    measured: list[Any],
) -> float:
    """CPU seconds of the process while `measured` is sent (after `warm`)."""
    from aiohttp import web

    from pipeline.gateway.app import make_app
    from pipeline.gateway.server import build_gateway

    gateway = build_gateway(settings, ["fraud"])
    threads = ThreadProfiles()
    default_pool = ThreadPoolExecutor(4, thread_name_prefix="gateway-default")
    asyncio.get_running_loop().set_default_executor(default_pool)
    for pool in (default_pool, gateway.redis_pool, gateway.producer._sender):
        threads.wrap(pool)
    runner = web.AppRunner(make_app(gateway), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/v1/streams/fraud/requests"
    headers = {"Authorization": f"Bearer {key}"}
    throttled = {"Authorization": f"Bearer {slow_key}"}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency)
        ) as session:

            async def send(bodies: list[Any]) -> None:
                while bodies:
                    body = bodies.pop()
                    async with session.post(url, json=body, headers=headers) as response:
                        await response.read()
                        if response.status != expected:
                            raise SystemExit(f"{PROG}: error: {response.status}")

            expected = 202

            async def part(bodies: list[Any]) -> None:
                await asyncio.gather(*(send(bodies) for _ in range(args.concurrency)))

            await part(warm)
            if args.throttled:
                async with session.post(url, json=warm[0], headers=throttled) as response:
                    await response.read()  # its one request
                headers.update(throttled)
                expected = 429
            profile = None if args.no_profile else cProfile.Profile()
            cpu = time.process_time()
            if profile is not None:
                threads.on = True
                profile.enable()
            await part(measured)
            if profile is not None:
                profile.disable()
                threads.on = False
            cpu = time.process_time() - cpu
    finally:
        await runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, gateway.producer.close)
        gateway.redis_pool.shutdown(wait=False)
    if profile is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            threads.stats(profile, out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())
    return cpu


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.gateway_rate import _records
    from pipeline.config import Settings
    from pipeline.gateway.keys import KeyStore, redis_prefix
    from pipeline.kafka.admin import ensure_topics
    from pipeline.redis.client import DegradingRedis

    namespace = f"bench-gwp-{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "INFERSTREAM_TOPIC_NAMESPACE": namespace}
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("INFERSTREAM_")})
    ensure_topics(settings.kafka_bootstrap, ["fraud"], settings.topic_partitions, 1, namespace)
    redis = DegradingRedis(settings, timeout_s=5.0)
    key, _ = KeyStore(redis, namespace).add("bench", rps=1e6, burst=1_000_000, cost_per_hour=1e12)
    slow_key, _ = KeyStore(redis, namespace).add("throttled", rps=0.001, burst=1)
    records = _records(args.requests + 300, seed=11)
    bodies: tuple[list[Any], list[Any]] = (records[:300], records[300:])
    if args.list_size > 1:  # lists of `list_size` requests per POST
        size = args.list_size
        bodies = tuple(  # type: ignore[assignment]
            [part[i : i + size] for i in range(0, len(part), size)] for part in bodies
        )
    try:
        cpu = asyncio.run(_run(args, settings, key, slow_key, *bodies))
    finally:
        names = redis.call(lambda c: scan_keys(c, redis_prefix(namespace) + "*")) or []
        if names:
            redis.call(lambda c: c.delete(*names))
    print(f"cpu_ms_per_request {cpu / args.requests * 1000:.3f} (process, client included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
