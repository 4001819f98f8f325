"""The HTTP gateway's accepted-request rate against the plain RequestProducer (issue 14).

Same run, same synthetic fraud requests, fresh topics: (1) `RequestProducer` sends them and
flushes (the floor of what producing costs in Python); (2) a gateway process (`inferstream
gateway`, with a key under generous limits, so that every request runs the full admission
path: key, GCRA rate and cost, pending status) receives them one request per POST from
`--concurrency` HTTP connections, and (3) as lists of `--list-size` per POST; (4) a paced open
loop at half of (2)'s rate gives the submit-to-202 latency, and one of lists at half of (3)'s
rate the latency of each list's 202 at half the sustained rate; (5) with a worker running, paced
open loops at 25/50/90 % of (2)'s rate, each request submitted and then long-polled
(`?wait=`) until done, give the end-to-end submit-to-result latency; (6) with
`--throttled-tenant`, a calm tenant's paced submits at 50 % alone and while another tenant
sends `--flood-x` times as many (open loop) and is answered 429 (over its rate limit), in
alternating pairs: the
ratio of the calm tenant's p99 with the flood to without. The gateway process's CPU
milliseconds per accepted request in (2) and (3) come from /proc (robust on a loaded
machine); request bodies are JSON-encoded before each part's clock starts. A 202
means the broker acknowledged the request (acks=all). The stack must be up. Run:
`python -m bench.gateway_rate`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import numpy as np

from pipeline.cli import Parser, positive_float, positive_int
from pipeline.redis.state import scan_keys

PROG = "python -m bench.gateway_rate"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=positive_int, default=4000, help="per part (default 4000)")
    p.add_argument("--concurrency", type=positive_int, default=64, help="HTTP connections")
    p.add_argument("--list-size", type=positive_int, default=100, help="requests per list POST")
    p.add_argument(
        "--list-concurrency", type=positive_int, default=8, help="HTTP connections sending lists"
    )
    p.add_argument("--paced-seconds", type=positive_int, default=5, help="latency part length")
    p.add_argument(
        "--paced-list-rate",
        type=positive_float,
        help="requests/s of the paced lists part (default: half of the lists' closed-loop rate;"
        " e.g. half of the worker's flat-out rate)",
    )
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end part (a worker)")
    p.add_argument(
        "--throttled-tenant",
        action="store_true",
        help="measure a calm tenant's p99 while another tenant is throttled (part 6)",
    )
    p.add_argument("--pairs", type=positive_int, default=3, help="alone/flooded pairs in (6)")
    p.add_argument(
        "--flood-x",
        type=positive_float,
        default=1.0,
        help="the throttled tenant's offered rate in (6), times the calm tenant's (default 1)",
    )
    p.add_argument("--json", help="write the numbers to this file too")
    return p


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    from pipeline.core.registry import get_plugin

    generator = get_plugin("fraud").generator(seed, None, {})  # type: ignore[misc]
    out = []
    for record in generator.generate(n):
        record.pop("request_id", None)
        record.pop("tenant", None)
        out.append(record)
    return out


def plain_producer(settings: Any, records: list[dict[str, Any]]) -> float:
    from pipeline.core.registry import stream_topics
    from pipeline.kafka.producer import RequestProducer

    # the generator's records, sent as every stop's baseline did: no per-field type check
    topics = stream_topics("fraud", settings.topic_namespace)
    producer = RequestProducer(settings, topics, check_records=False)
    for record in records[:200]:  # warm up: connections, metadata, the first batches
        producer.send({**record, "tenant": "bench"})
    producer.flush()
    records = records[200:]
    started = time.perf_counter()
    for record in records:
        producer.send({**record, "tenant": "bench"})
    producer.flush()
    return len(records) / (time.perf_counter() - started)


class Gateway:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "gateway", "--port", "0"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.port = 0
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "ready":
                self.port = int(entry["port"])
                break
        if not self.port:
            raise SystemExit(f"{PROG}: error: the gateway did not start")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the gateway process so far (/proc/<pid>/stat)."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


async def _flood(url: str, key: str, body: Any, stop: asyncio.Event, rate: float) -> int:
    """Open-loop POSTs of one throttled tenant at `rate` per second until `stop`; how many
    were answered 429."""
    headers = {"Authorization": f"Bearer {key}"}
    refused = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one() -> None:
            nonlocal refused
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                refused += response.status == 429

        tasks = []
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
            i += 1
        await asyncio.gather(*tasks)
    return refused


def _flood_process(url: str, key: str, body: Any, rate: float, seconds: float, out: Any) -> None:
    """A child process's flood for `seconds` (the calm tenant's client loop is not shared
    with it: its latencies are the gateway's, not the flood client's queueing)."""

    async def run() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await _flood(url, key, body, stop, rate)

    out.put(asyncio.run(run()))


def _calm_with_flood(
    url: str, calm: str, throttled: str, bodies: list[Any], rate: float, flood_rate: float
) -> tuple[int, list[float], int]:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    out = context.Queue()
    seconds = len(bodies) / rate + 1.0
    flood = context.Process(
        target=_flood_process, args=(url, throttled, bodies[0], flood_rate, seconds, out)
    )
    flood.start()
    time.sleep(0.5)  # the flood is under way before the calm tenant's first submit
    accepted, latencies = asyncio.run(_paced(url, calm, bodies, rate))
    refused = out.get(timeout=120)
    flood.join(30)
    return accepted, latencies, refused


def isolation(
    url: str,
    calm: str,
    throttled: str,
    records: list[Any],
    rate: float,
    args: argparse.Namespace,
    cpu_s: Any,
) -> dict[str, Any]:
    """Part (6): alternating pairs, alone then flooded, the calm tenant's p99 each; and the
    gateway's CPU per 429: (CPU flooded - CPU alone) / refusals."""
    count = int(rate * args.paced_seconds)
    pairs = []
    for i in range(args.pairs):
        alone_bodies = records[(2 * i) * count : (2 * i + 1) * count]
        flood_bodies = records[(2 * i + 1) * count : (2 * i + 2) * count]
        cpu = cpu_s()
        alone_ok, alone = asyncio.run(_paced(url, calm, alone_bodies, rate))
        cpu_alone = cpu_s() - cpu
        cpu = cpu_s()
        flooded_ok, flooded, refused = _calm_with_flood(
            url, calm, throttled, flood_bodies, rate, rate * args.flood_x
        )
        cpu_flooded = cpu_s() - cpu
        pairs.append(
            {
                "alone_p99_ms": _ms(alone, 0.99),
                "flooded_p99_ms": _ms(flooded, 0.99),
                "ratio": round(_ms(flooded, 0.99) / _ms(alone, 0.99), 2),
                "calm_accepted": [alone_ok, flooded_ok, count],
                "throttled_429": refused,
                "cpu_ms_per_429": round((cpu_flooded - cpu_alone) / max(refused, 1) * 1000, 3),
            }
        )
        _log(f"isolation pair {i + 1}: {pairs[-1]}")
    ratios = sorted(p["ratio"] for p in pairs)
    per_429 = sorted(p["cpu_ms_per_429"] for p in pairs)
    return {
        "rate_per_s": round(rate),
        "flood_rate_per_s": round(rate * args.flood_x),
        "pairs": pairs,
        "median_ratio": ratios[len(ratios) // 2],
        "median_cpu_ms_per_429": per_429[len(per_429) // 2],
    }


async def _closed_loop(
    url: str, key: str, bodies: list[Any], concurrency: int
) -> tuple[float, int, list[float]]:
    """Send `bodies` from `concurrency` workers as fast as answers come; (seconds, accepted,
    latencies). The bodies are JSON-encoded before the clock starts: the load generator shares
    the machine's cores with the gateway, and its own encoding is not the gateway's cost."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    accepted = 0
    latencies: list[float] = []
    queue = [json.dumps(body).encode() for body in reversed(bodies)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal accepted
            while queue:
                body = queue.pop()
                sent = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    answer = json.loads(await response.read())
                    if response.status == 202:
                        accepted += len(answer["requests"])
                latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, accepted, latencies


async def _paced(url: str, key: str, bodies: list[Any], rate: float) -> tuple[int, list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    accepted = 0
    payloads = [json.dumps(body).encode() for body in bodies]  # encoded before the clock
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(body: bytes) -> None:
            nonlocal accepted
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                accepted += response.status == 202
            latencies.append(time.perf_counter() - sent)

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(payloads):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return accepted, latencies


async def _end_to_end(
    base: str, key: str, bodies: list[Any], rate: float
) -> tuple[int, list[float]]:
    """Paced submits, each then long-polled until done: (completed, submit-to-result s)."""
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(body: Any) -> None:
            sent = time.perf_counter()
            url = f"{base}/v1/streams/fraud/requests"
            async with session.post(url, json=body, headers=headers) as response:
                if response.status != 202:
                    return
                request_id = (await response.json())["requests"][0]["request_id"]
            for _ in range(10):
                async with session.get(
                    f"{base}/v1/requests/{request_id}?wait=10", headers=headers
                ) as response:
                    if (await response.json()).get("status") == "done":
                        latencies.append(time.perf_counter() - sent)
                        return

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return len(latencies), latencies


def _log(line: str) -> None:
    print(f"[{PROG}] {line}", file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> float:
    return round(float(np.quantile(values, q)) * 1000, 1) if values else float("nan")


def bench_namespace(prefix: str) -> tuple[str, dict[str, str], Any]:
    """A fresh topic namespace for one gateway bench run, its fraud topics created: (namespace,
    the environment of the run's processes, their Settings)."""
    from pipeline.config import Settings
    from pipeline.kafka.admin import ensure_topics

    run = uuid.uuid4().hex[:6]
    namespace = f"{prefix}-{run}."
    env = {**os.environ, "INFERSTREAM_TOPIC_NAMESPACE": namespace,
           "INFERSTREAM_APP_ID": f"{prefix}-{run}"}  # fmt: skip
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("INFERSTREAM_")})
    ensure_topics(settings.kafka_bootstrap, ["fraud"], settings.topic_partitions, 1, namespace)
    return namespace, env, settings


def execute(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.gateway.keys import KeyStore, redis_prefix
    from pipeline.redis.client import DegradingRedis

    namespace, env, settings = bench_namespace("bench-gw")
    n = args.requests
    records = _records(n * 3 + 40_000, seed=7)
    isolation_records = _records(40_000, seed=8) if args.throttled_tenant else []
    plain = plain_producer(settings, records[3 * n + 30_200 : 3 * n + 30_400] + records[:n])
    redis = DegradingRedis(settings, timeout_s=5.0)  # the bench's own calls: a busy machine
    key, _ = KeyStore(redis, namespace).add("bench", rps=1e6, burst=1_000_000, cost_per_hour=1e12)
    gateway = Gateway(env)
    url = f"http://127.0.0.1:{gateway.port}/v1/streams/fraud/requests"
    try:
        warm = records[3 * n + 30_000 : 3 * n + 30_200]  # the gateway's first requests
        asyncio.run(_closed_loop(url, key, warm, args.concurrency))
        singles = records[n : 2 * n]
        cpu = gateway.cpu_s()
        seconds, accepted, lat = asyncio.run(_closed_loop(url, key, singles, args.concurrency))
        single_cpu_ms = (gateway.cpu_s() - cpu) / max(accepted, 1) * 1000
        single_rate = accepted / seconds
        size = args.list_size
        lists = [records[2 * n + i : 2 * n + i + size] for i in range(0, n, size)]
        cpu = gateway.cpu_s()
        list_seconds, list_accepted, _ = asyncio.run(
            _closed_loop(url, key, lists, args.list_concurrency)
        )
        list_cpu_ms = (gateway.cpu_s() - cpu) / max(list_accepted, 1) * 1000
        paced_n = int(single_rate * 0.5 * args.paced_seconds)
        paced_bodies = records[3 * n : 3 * n + paced_n]
        paced_ok, paced_lat = asyncio.run(_paced(url, key, paced_bodies, single_rate * 0.5))
        # the same at half of (3)'s rate, as lists: the sustained rate's latency (each list of
        # `size` requests answered with one 202); bodies reuse (3)'s lists
        list_rate = list_accepted / list_seconds
        paced_list_rate = args.paced_list_rate or list_rate * 0.5
        paced_lists = [lists[i % len(lists)] for i in range(
            max(1, int(paced_list_rate * args.paced_seconds / size)))]  # fmt: skip
        lists_ok, lists_lat = asyncio.run(_paced(url, key, paced_lists, paced_list_rate / size))
        isolated: dict[str, Any] = {}
        if args.throttled_tenant:
            store = KeyStore(redis, namespace)
            calm, _ = store.add("calm", rps=1e6, burst=1_000_000)
            throttled, _ = store.add("throttled", rps=1, burst=1)
            isolated = isolation(
                url, calm, throttled, isolation_records, single_rate * 0.5, args, gateway.cpu_s
            )
        e2e: dict[str, Any] = {}
        if not args.no_e2e:
            from pipeline.stack.worker_process import WorkerProcess

            worker = WorkerProcess(env).start()
            try:
                offset = 3 * n + paced_n
                # warm-up: the worker's first batches (partitions, sessions, the batcher's fit)
                warm_n = max(20, int(single_rate * 0.1 * 2))
                asyncio.run(
                    _end_to_end(
                        f"http://127.0.0.1:{gateway.port}", key,
                        records[offset : offset + warm_n], single_rate * 0.1,
                    )
                )  # fmt: skip
                offset += warm_n
                for load in (0.25, 0.5, 0.9):
                    rate = single_rate * load
                    count = int(rate * args.paced_seconds)
                    bodies = records[offset : offset + count]
                    offset += count
                    _log(f"end to end at {load:.0%} ({rate:.0f}/s, {count} requests)")
                    done, e2e_lat = asyncio.run(
                        _end_to_end(f"http://127.0.0.1:{gateway.port}", key, bodies, rate)
                    )
                    e2e[f"{round(load * 100)}%"] = {
                        "rate_per_s": round(rate),
                        "sent": count,
                        "done": done,
                        "p50_p99_ms": [_ms(e2e_lat, 0.5), _ms(e2e_lat, 0.99)],
                    }
            finally:
                worker.stop()
    finally:
        gateway.stop()
        names = redis.call(lambda c: scan_keys(c, redis_prefix(namespace) + "*")) or []
        if names:
            redis.call(lambda c: c.delete(*names))
    return {
        "requests_per_part": n,
        "plain_request_producer_per_s": round(plain),
        "gateway_single_per_s": round(single_rate),
        "gateway_single_accepted": accepted,
        "gateway_single_p50_p99_ms_flat_out": [_ms(lat, 0.5), _ms(lat, 0.99)],
        "gateway_single_cpu_ms_per_request": round(single_cpu_ms, 3),
        "gateway_list_records_per_s": round(list_accepted / list_seconds),
        "gateway_list_accepted": list_accepted,
        "gateway_list_cpu_ms_per_request": round(list_cpu_ms, 4),
        "ratio_single_to_plain": round(single_rate / plain, 3),
        "ratio_list_to_plain": round(list_accepted / list_seconds / plain, 3),
        "paced_rate_per_s": round(single_rate * 0.5),
        "paced_accepted": paced_ok,
        "paced_sent": paced_n,
        "paced_p50_p99_ms": [_ms(paced_lat, 0.5), _ms(paced_lat, 0.99)],
        "paced_lists_rate_per_s": round(paced_list_rate),
        "paced_lists_sent": len(paced_lists),
        "paced_lists_accepted": lists_ok,
        "paced_lists_p50_p99_ms": [_ms(lists_lat, 0.5), _ms(lists_lat, 0.99)],
        "end_to_end_submit_to_result": e2e,
        "other_tenant_p99_while_one_is_throttled": isolated,
        "concurrency": args.concurrency,
        "list_size": size,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a timeout) unwinds like Ctrl-C: the gateway and worker children are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = execute(args)
    for name, value in result.items():
        print(f"{name:<38} {value}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
