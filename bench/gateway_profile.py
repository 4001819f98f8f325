"""Where one gateway POST spends its time: the gateway built in-process (the real app, Redis,
broker and result index), a real aiohttp client on loopback sending single-request POSTs
from `--concurrency` connections, under cProfile; prints the top functions by own and
cumulative time and the CPU-seconds per request of the whole process (client included).
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
import time
import uuid
from typing import Any

import aiohttp

from pipeline.cli import Parser, positive_int
from pipeline.redis.state import scan_keys

PROG = "python -m bench.gateway_profile"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=positive_int, default=3000)
    p.add_argument("--concurrency", type=positive_int, default=32)
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
    args: argparse.Namespace, settings: Any, key: str, slow_key: str, records: list[Any]
) -> float:
    from aiohttp import web

    from pipeline.gateway.app import make_app
    from pipeline.gateway.server import build_gateway

    gateway = build_gateway(settings, ["fraud"])
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

            await part(records[:300])  # warm up
            if args.throttled:
                async with session.post(url, json=records[0], headers=throttled) as response:
                    await response.read()  # its one request
                headers.update(throttled)
                expected = 429
            profile = None if args.no_profile else cProfile.Profile()
            cpu = time.process_time()
            if profile is not None:
                profile.enable()
            await part(records[300:])
            if profile is not None:
                profile.disable()
            cpu = time.process_time() - cpu
    finally:
        await runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, gateway.producer.close)
        gateway.redis_pool.shutdown(wait=False)
    if profile is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
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
    try:
        cpu = asyncio.run(_run(args, settings, key, slow_key, records))
    finally:
        names = redis.call(lambda c: scan_keys(c, redis_prefix(namespace) + "*")) or []
        if names:
            redis.call(lambda c: c.delete(*names))
    print(f"cpu_ms_per_request {cpu / args.requests * 1000:.3f} (process, client included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
