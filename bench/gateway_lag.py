"""Where the gateway's slow submits come from: event-loop stalls, measured directly (issue 14).

A gateway process (`--serve`, the real `serve()` with probes added through its `extend`
hook; nothing of this runs in a normal gateway) records:

- the loop's lag: a task sleeping 1 ms at a time, every wake-up later than `--stall-ms`
  recorded with its wall-clock start and length;
- what the loop thread was doing in each stall: a watchdog thread samples the loop thread's
  stack (and the busiest other threads' top frames) once the heartbeat is `--stall-ms` late;
- garbage collections (`gc.callbacks`): generation, length, objects collected;
- CPU seconds per thread (/proc/self/task), so a thread that steals the GIL shows;
- the loop thread's time runnable but off every CPU (/proc/.../schedstat): a stall while
  the machine's other work has the cores, which no code in the gateway can shorten;
- per-phase times: the Redis pool hand-off (queued / ran / back on the loop), produce to
  broker acknowledgement, librdkafka's own produce-to-report latency, the server-side submit;

and serves them at `/bench/probe` (GET: the records since the last GET). The client (this
module without `--serve`) warms the gateway up, measures the single-POST closed-loop rate
(or takes `--rate`), then sends a paced open loop at `--load` of it and reports p50/p99
submit-to-202 and, for the submits over `--slow-ms`, how many overlapped a server loop stall,
a gc pause, or a stall of the client's own loop (also probed). Meanwhile a probe producer
(a child process, 50 records/s to the run's dead-letter topic without a request_id header,
which the result index skips) measures the broker's own produce-to-ack latency, and with
`--results-from` another child copies an earlier run's results and provenance into this
run's topics, so that the result index works as it does beside a worker. The stack must be
up. Run: `python -m bench.gateway_lag`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from typing import Any

import aiohttp
import numpy as np

from pipeline.cli import Parser, positive_float, positive_int
from pipeline.redis.state import scan_keys

PROG = "python -m bench.gateway_lag"


class _TimedProducer:
    """librdkafka's producer with each delivery report timed: librdkafka's own latency
    (produce() to the report) and the time from the produce() call to the report's callback
    (the gateway's delivery thread serving it); everything else is the producer's own."""

    def __init__(self, inner: Any, probe: Any) -> None:
        self._inner = inner
        self._probe = probe  # its `phases`, replaced at each take()

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def produce(self, *args: Any, on_delivery: Any = None, **kwargs: Any) -> Any:
        called = time.perf_counter()

        def delivered(error: Any, message: Any) -> None:
            phases = self._probe.phases
            latency = message.latency()
            if latency is not None:
                phases["librdkafka produce() to report"].append(latency)
            phases["produce() call to report callback"].append(time.perf_counter() - called)
            if on_delivery is not None:
                on_delivery(error, message)

        return self._inner.produce(*args, on_delivery=delivered, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--requests", type=positive_int, default=2000, help="closed-loop part")
    p.add_argument("--concurrency", type=positive_int, default=64)
    p.add_argument("--load", type=positive_float, default=0.5, help="paced rate / closed rate")
    p.add_argument("--rate", type=positive_float, help="paced rate per s (no closed loop)")
    p.add_argument("--paced-seconds", type=positive_int, default=4)
    p.add_argument("--stall-ms", type=positive_float, default=5.0, help="a loop stall, ms")
    p.add_argument("--slow-ms", type=positive_float, default=20.0, help="a slow submit, ms")
    p.add_argument(
        "--switch-interval-ms",
        type=positive_float,
        help="the gateway's sys.setswitchinterval, an experiment (default: the server's own)",
    )
    p.add_argument(
        "--results-from",
        metavar="NAMESPACE",
        help="while pacing, copy real result and provenance records of an earlier run (e.g."
        " a bench.replay_rate namespace) to this run's topics at the paced rate, in batches"
        " of --result-batch: the result index at work, as with a worker",
    )
    p.add_argument("--result-batch", type=positive_int, default=100)
    p.add_argument("--top", type=positive_int, default=8, help="stack sites to print")
    p.add_argument("--json", help="write the numbers to this file too")
    return p


# --- the gateway side ------------------------------------------------------------------


class LoopProbe:
    """Heartbeat task, stack-sampling watchdog, gc timings and per-thread CPU (see the doc)."""

    def __init__(self, stall_ms: float) -> None:
        self.stall_s = stall_ms / 1000
        self.beat = time.perf_counter()
        self.stalls: list[tuple[float, float]] = []  # (wall start, seconds)
        self.samples: list[dict[str, Any]] = []
        self.gcs: list[tuple[float, int, float, int]] = []  # (wall start, gen, s, collected)
        self._gc_started = 0.0
        self._loop_thread = threading.get_ident()
        self._sampled_beat = 0.0
        self._cpu = self._thread_cpu()
        self._sched = self._loop_sched()
        self._stop = threading.Event()
        # phase -> seconds per call: the server-side submit, pool queue wait and run, produce
        self.phases: dict[str, list[float]] = collections.defaultdict(list)

    async def heartbeat(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            late = now - before - 0.001
            if late > self.stall_s:
                self.stalls.append((time.time() - (now - before), late))
            self.beat = now

    def watchdog(self) -> None:
        while not self._stop.wait(0.002):
            beat = self.beat
            if time.perf_counter() - beat < self.stall_s or beat == self._sampled_beat:
                continue
            self._sampled_beat = beat  # one sample per stall
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            loop = frames.get(self._loop_thread)
            self.samples.append(
                {
                    "at": time.time(),
                    "loop": _stack(loop),
                    "others": {
                        names.get(ident, str(ident)): _stack(frame, 2)
                        for ident, frame in frames.items()
                        if ident not in (self._loop_thread, threading.get_ident())
                    },
                }
            )

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        self.gcs.append((time.time() - took, info["generation"], took, info["collected"]))

    def _thread_cpu(self) -> dict[str, float]:
        names = {t.native_id: t.name for t in threading.enumerate()}
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = collections.defaultdict(float)
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = names.get(int(tid), "native")
            # pools: one line per pool, not per thread
            name = name.rsplit("_", 1)[0] if name.startswith(("gateway-", "Thread")) else name
            out[name] += (int(fields[11]) + int(fields[12])) / tick
        return out

    def _loop_sched(self) -> list[int]:
        """The loop thread's (ns on a CPU, ns runnable but waiting for one): schedstat."""
        tid = getattr(self, "_loop_native", threading.get_native_id())
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                return [int(v) for v in stat.read().split()[:2]]
        except OSError:
            return [0, 0]

    def take(self) -> dict[str, Any]:
        """What was recorded since the last call."""
        sched = self._loop_sched()
        on_cpu, waited = (b - a for a, b in zip(self._sched, sched, strict=True))
        self._sched = sched
        cpu = self._thread_cpu()
        taken = {
            "stalls": self.stalls,
            "samples": self.samples,
            "gcs": self.gcs,
            "thread_cpu_s": {
                name: round(cpu[name] - self._cpu.get(name, 0.0), 3)
                for name in cpu
                if cpu[name] - self._cpu.get(name, 0.0) > 0
            },
            # a loop stalled while runnable but off every CPU: the machine's load, not ours
            "loop_on_cpu_ms": round(on_cpu / 1e6, 1),
            "loop_runqueue_wait_ms": round(waited / 1e6, 1),
            "gc_counts": gc.get_count(),
            "gc_frozen": gc.get_freeze_count(),
            "gc_tracked": len(gc.get_objects()),
            "phases_ms": {
                name: [len(v), _ms(v, 0.5), _ms(v, 0.99), _ms(v, 1.0)]
                for name, v in sorted(self.phases.items())
            },
        }
        self.stalls, self.samples, self.gcs, self._cpu = [], [], [], cpu
        self.phases = collections.defaultdict(list)
        return taken

    def time_phases(self, gateway: Any) -> None:
        """Wrap the gateway's pool hand-off and produce call to time their parts."""
        in_pool, send = gateway.in_pool, gateway.producer.send

        async def timed_pool(fn: Any, *args: Any) -> Any:
            queued = time.perf_counter()
            ran: list[float] = []

            def run() -> Any:
                ran.append(time.perf_counter())
                try:
                    return fn(*args)
                finally:
                    ran.append(time.perf_counter())

            try:
                return await in_pool(run)
            finally:
                name = getattr(fn, "__name__", "fn")
                if len(ran) == 2:
                    phases = self.phases
                    phases[f"pool {name} queued"].append(ran[0] - queued)
                    phases[f"pool {name} ran"].append(ran[1] - ran[0])
                    phases[f"pool {name} back on loop"].append(time.perf_counter() - ran[1])

        async def timed_send(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await send(*args, **kwargs)
            finally:
                self.phases["produce to ack"].append(time.perf_counter() - started)

        gateway.in_pool = timed_pool
        gateway.producer.send = timed_send
        for producer in gateway.producer._producers.values():
            producer._producer = _TimedProducer(producer._producer, self)

    def install(self, app: Any) -> None:
        from aiohttp import web

        async def start(app: Any) -> None:
            self._loop_thread = threading.get_ident()
            self._loop_native = threading.get_native_id()
            self._sched = self._loop_sched()
            app["bench_heartbeat"] = asyncio.ensure_future(self.heartbeat())
            threading.Thread(target=self.watchdog, name="bench-watchdog", daemon=True).start()
            gc.callbacks.append(self.on_gc)

        async def stop(app: Any) -> None:
            self._stop.set()
            app["bench_heartbeat"].cancel()

        async def probe(request: web.Request) -> web.Response:
            return web.json_response(self.take())

        @web.middleware
        async def timed(request: web.Request, handler: Any) -> Any:
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                if request.method == "POST":
                    self.phases["submit, server side"].append(time.perf_counter() - started)

        app.middlewares.append(timed)
        app.on_startup.append(start)
        app.on_cleanup.append(stop)
        app.router.add_get("/bench/probe", probe)


def _stack(frame: Any, depth: int = 6) -> list[str]:
    if frame is None:
        return []
    entries = traceback.extract_stack(frame)[-depth:]
    return [f"{_short(e.filename)}:{e.lineno} {e.name}" for e in reversed(entries)]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/pipeline/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def serve_probed(stall_ms: float, switch_interval_ms: float | None) -> None:
    from pipeline.config import Settings
    from pipeline.gateway import server
    from pipeline.gateway.server import build_gateway, serve
    from pipeline.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level)
    if switch_interval_ms is not None:
        sys.setswitchinterval(switch_interval_ms / 1000)
    gateway = build_gateway(settings, ["fraud"])
    probe = LoopProbe(stall_ms)
    probe.time_phases(gateway)
    make_app = server.make_app

    def probed_app(gateway: Any) -> Any:
        app = make_app(gateway)
        probe.install(app)
        return app

    # the probe joins the app serve() builds: patched here, in the bench process only (so
    # that the same probe runs against older gateway code in paired runs)
    server.make_app = probed_app
    asyncio.run(serve(gateway, "127.0.0.1", 0))


# --- the client side -------------------------------------------------------------------


class ClientLag:
    """The client's own loop lag: its stalls make submits look slow too."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self.stalls: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late = time.perf_counter() - before - 0.001
            if late > self.stall_s:
                self.stalls.append((time.time() - late - 0.001, late))


async def _closed(url: str, headers: dict[str, str], bodies: list[Any], concurrency: int) -> float:
    queue = list(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> int:
            done = 0
            while queue:
                async with s.post(url, json=queue.pop(), headers=headers) as response:
                    await response.read()
                    done += response.status == 202
            return done

        started = time.perf_counter()
        accepted = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
        return accepted / (time.perf_counter() - started)


async def _paced(
    base: str, headers: dict[str, str], bodies: list[Any], rate: float, stall_s: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], dict[str, Any]]:
    """((wall sent, seconds) per accepted submit, the client's stalls, the server's probe)."""
    url = f"{base}/v1/streams/fraud/requests"
    done: list[tuple[float, float]] = []
    lag = ClientLag(stall_s)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async with session.get(f"{base}/bench/probe") as response:
            await response.read()  # resets the server's records: this part's only

        async def one(body: Any) -> None:
            wall, sent = time.time(), time.perf_counter()
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                if response.status == 202:
                    done.append((wall, time.perf_counter() - sent))

        probe = asyncio.ensure_future(lag.run())
        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(body)))
        await asyncio.gather(*tasks)
        probe.cancel()
        async with session.get(f"{base}/bench/probe") as response:
            server = await response.json()
    return done, lag.stalls, server


def _overlaps(wall: float, took: float, spans: list[tuple[float, float]], min_s: float) -> bool:
    return any(s < wall + took and s + d > wall and d >= min_s for s, d in spans)


def _ms(values: Any, q: float) -> float:
    return round(float(np.quantile(values, q)) * 1000, 1) if len(values) else float("nan")


def report(
    done: list[tuple[float, float]],
    client_stalls: list[tuple[float, float]],
    server: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    latencies = [took for _, took in done]
    slow = [(w, t) for w, t in done if t > args.slow_ms / 1000]
    stalls = [tuple(s) for s in server["stalls"]]
    gcs = [(s, d) for s, _, d, _ in server["gcs"]]
    minimum = args.stall_ms / 1000
    sites = collections.Counter(
        " <- ".join(sample["loop"][:3]) for sample in server["samples"]
    ).most_common(args.top)
    stall_s = [d for _, d in stalls]
    by_gen = collections.defaultdict(list)
    for _, gen, took, _ in server["gcs"]:
        by_gen[gen].append(took)
    return {
        "submits": len(done),
        "p50_p99_max_ms": [_ms(latencies, 0.5), _ms(latencies, 0.99), _ms(latencies, 1.0)],
        "slow_submits": len(slow),
        "slow_with_server_stall": sum(_overlaps(w, t, stalls, minimum) for w, t in slow),
        "slow_with_gc": sum(_overlaps(w, t, gcs, 0.0) for w, t in slow),
        "slow_with_client_stall": sum(_overlaps(w, t, client_stalls, minimum) for w, t in slow),
        "server_stalls": len(stalls),
        "server_stall_p50_max_ms": [_ms(stall_s, 0.5), _ms(stall_s, 1.0)],
        "server_stalled_ms_total": round(sum(stall_s) * 1000, 1),
        "loop_thread_runqueue_wait_ms": server["loop_runqueue_wait_ms"],
        "loop_thread_on_cpu_ms": server["loop_on_cpu_ms"],
        "client_stalls": len(client_stalls),
        "client_stall_max_ms": _ms([d for _, d in client_stalls], 1.0),
        "gc_ms_by_generation": {
            str(g): {"n": len(v), "total": round(sum(v) * 1000, 2), "max": _ms(v, 1.0)}
            for g, v in sorted(by_gen.items())
        },
        "gc_tracked_objects": server["gc_tracked"],
        "gc_frozen": server["gc_frozen"],
        "server_phases_ms [n, p50, p99, max]": server["phases_ms"],
        "thread_cpu_s": dict(sorted(server["thread_cpu_s"].items(), key=lambda kv: -kv[1])),
        "loop_stall_sites": sites,
        "other_threads_in_stalls": collections.Counter(
            f"{name}: {stack[0] if stack else '?'}"
            for sample in server["samples"]
            for name, stack in sample["others"].items()
            if stack and not _idle(stack[0])
        ).most_common(args.top),
    }


_IDLE = ("wait", "select", "poll", "consume", "_worker", "get_message", "_run", "_poll")


def _idle(frame: str) -> bool:
    """A thread parked in a blocking call (off the GIL), not one competing for it."""
    return frame.rsplit(" ", 1)[-1] in _IDLE


def _copy_results(
    source: str, namespace: str, count: int, rate: float, batch: int, ready: Any, go: Any
) -> None:
    """A child process: read `count` result and provenance records of `source`, then (on
    `go`) produce them raw to `namespace`'s topics, `batch` of each every batch / rate s."""
    from confluent_kafka import Consumer, Producer

    kinds = ("results", "provenance")
    consumer = Consumer(
        {"bootstrap.servers": os.environ.get("INFERSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
         "group.id": f"bench-gwl-copy-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
         "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([f"{source}fraud.{kind}" for kind in kinds])
    held: dict[str, list[Any]] = {kind: [] for kind in kinds}
    deadline = time.monotonic() + 60
    while min(len(v) for v in held.values()) < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, 1.0):
            kind = message.topic().rsplit(".", 1)[1]
            if message.error() is None and len(held[kind]) < count:
                held[kind].append((message.value(), message.headers()))
    consumer.close()
    producer = Producer({"bootstrap.servers": "127.0.0.1:9092", "linger.ms": 5})
    ready.set()
    go.wait()
    start = time.perf_counter()
    for i in range(0, count, batch):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for kind in kinds:
            for value, headers in held[kind][i : i + batch]:
                producer.produce(f"{namespace}fraud.{kind}", value, headers=headers)
        producer.poll(0)
    producer.flush(30)


def _broker_probe(topic: str, rate: float, seconds: float, out: Any) -> None:
    """A child process: one small record every 1/rate s, acks=all and linger.ms=2 as the
    gateway sends, each report served at once: the broker's own produce-to-ack latency
    meanwhile (no gateway threads or GIL in the way)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": "127.0.0.1:9092", "linger.ms": 2, "acks": "all"})
    latencies: list[float] = []

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            latencies.append(message.latency())

    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        producer.produce(topic, b"probe", on_delivery=delivered)
        i += 1
        while time.perf_counter() < start + i / rate:
            producer.poll(0.0005)
    producer.flush(10)
    out.put(latencies)


def _machine_cpu() -> list[int]:
    """(all jiffies, idle + iowait jiffies) of every CPU so far (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return [sum(values), values[3] + values[4]]


def execute(args: argparse.Namespace) -> dict[str, Any]:
    from bench.gateway_rate import _records, bench_namespace
    from pipeline.gateway.keys import KeyStore, redis_prefix
    from pipeline.redis.client import DegradingRedis

    namespace, env, settings = bench_namespace("bench-gwl")
    redis = DegradingRedis(settings, timeout_s=5.0)
    key, _ = KeyStore(redis, namespace).add("bench", rps=1e6, burst=1_000_000, cost_per_hour=1e12)
    headers = {"Authorization": f"Bearer {key}"}
    records = _records(args.requests + 300 + 20_000, seed=13)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_lag", "--serve", "--stall-ms", str(args.stall_ms)]
        + ([] if args.switch_interval_ms is None else
           ["--switch-interval-ms", str(args.switch_interval_ms)]),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "ready":
            port = int(entry["port"])
            break
    if not port:
        raise SystemExit(f"{PROG}: error: the gateway did not start")
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/streams/fraud/requests"
    try:
        asyncio.run(_closed(url, headers, records[:300], args.concurrency))  # warm-up
        closed_rate = None
        rate = args.rate
        if rate is None:
            closed_rate = asyncio.run(
                _closed(url, headers, records[300 : 300 + args.requests], args.concurrency)
            )
            rate = closed_rate * args.load
        offset = 300 + args.requests
        bodies = records[offset : offset + int(rate * args.paced_seconds)]
        copier = None
        if args.results_from:
            import multiprocessing

            context = multiprocessing.get_context("fork")
            ready, go = context.Event(), context.Event()
            copier = context.Process(
                target=_copy_results,
                args=(args.results_from, namespace, len(bodies), rate, args.result_batch,
                      ready, go),
            )  # fmt: skip
            copier.start()
            ready.wait(90)
            go.set()
        import multiprocessing

        probe_out = multiprocessing.get_context("fork").Queue()
        broker = multiprocessing.get_context("fork").Process(
            target=_broker_probe,
            args=(f"{namespace}fraud.dlq", 50.0, len(bodies) / rate, probe_out),
        )
        broker.start()
        machine = _machine_cpu()
        done, client_stalls, server = asyncio.run(
            _paced(base, headers, bodies, rate, args.stall_ms / 1000)
        )
        broker_latency = probe_out.get(timeout=60)
        broker.join(30)
        if copier is not None:
            copier.join(60)
        machine = [b - a for a, b in zip(machine, _machine_cpu(), strict=True)]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        names = redis.call(lambda c: scan_keys(c, redis_prefix(namespace) + "*")) or []
        if names:
            redis.call(lambda c: c.delete(*names))
    return {
        "closed_loop_per_s": round(closed_rate) if closed_rate else None,
        "paced_rate_per_s": round(rate),
        "loadavg": os.getloadavg(),
        # the whole machine during the paced part: client, gateway, Kafka, Redis, the rest
        "machine_cpu_busy": round(1 - machine[1] / max(machine[0], 1), 3),
        "broker_probe_ack_p50_p99_max_ms": [
            _ms(broker_latency, 0.5), _ms(broker_latency, 0.99), _ms(broker_latency, 1.0)
        ],
        **report(done, client_stalls, server, args),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve:
        serve_probed(args.stall_ms, args.switch_interval_ms)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = execute(args)
    for name, value in result.items():
        print(f"{name:<26} {json.dumps(value)}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
