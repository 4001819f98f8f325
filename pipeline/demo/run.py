"""Run the demo: topics, a worker, a drift worker, a paced producer, and the live view.

The demo works in a topic namespace and consumer groups of its own (`demo.`,
`inferstream-demo`, unless INFERSTREAM_TOPIC_NAMESPACE / INFERSTREAM_APP_ID say otherwise),
counts only answers to the requests it produced itself, and stops its workers however it ends.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from rich.console import Console
from rich.live import Live

from pipeline.assembly import group_id
from pipeline.codec import AvroDeserializer, DecodeError, registry_from_settings
from pipeline.config import Settings
from pipeline.core.plugin import DriftInjection, StreamPlugin
from pipeline.core.registry import DEFAULT_STREAM, get_plugin
from pipeline.core.topics import drift_alerts_topic
from pipeline.demo.metrics import BehindTracker, DemoStats
from pipeline.demo.view import behind_line, render, summary
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.client_config import client_config
from pipeline.kafka.producer import RequestProducer
from pipeline.redis.state import RedisStateStore
from pipeline.stack.worker_process import WorkerProcess

DEMO_NAMESPACE = "demo."
DEMO_APP_ID = "inferstream-demo"
DEFAULT_RATE = 2000.0  # sustained on a 2-core machine with Kafka, Redis and both workers
MAX_RATE = 50_000.0  # above what one worker scores flat out (~20-27k/s on 2 cores)
MAX_SECONDS = 24 * 3600.0
DRAIN_S = 15.0  # after producing, how long to wait for the last results


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 60.0
    rate: float = DEFAULT_RATE
    seed: int = 7
    drift_feature: str = ""  # the stream's first driftable field when empty
    drift_shift: float = 1.0  # in standard deviations, injected halfway through
    stream: str = DEFAULT_STREAM

    @property
    def plugin(self) -> StreamPlugin:
        return get_plugin(self.stream)


def parse_options(
    seconds: str | float,
    rate: str | float,
    seed: str | int,
    drift_feature: str | None,
    drift_shift: str | float,
    stream: str = DEFAULT_STREAM,
) -> DemoOptions:
    """DemoOptions from flag values; ValueError (one line, naming the flag) when one is bad."""

    def number(flag: str, raw: str | float) -> float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{flag} {raw!r} is not a number") from None

    secs = number("--seconds", seconds)
    if not (math.isfinite(secs) and 0 < secs <= MAX_SECONDS):
        raise ValueError(f"--seconds must be > 0 and at most {MAX_SECONDS:.0f} (got {seconds})")
    per_s = number("--rate", rate)
    if not (math.isfinite(per_s) and 0 < per_s <= MAX_RATE):
        raise ValueError(f"--rate must be > 0 and at most {MAX_RATE:,.0f} per second (got {rate})")
    shift = number("--drift-shift", drift_shift)
    if not math.isfinite(shift):
        raise ValueError(f"--drift-shift must be a finite number (got {drift_shift})")
    plugin = get_plugin(stream)
    if plugin.generator is None:
        raise ValueError(f"stream {stream} has no synthetic generator to run the demo with")
    driftable = plugin.driftable_fields
    drift_feature = drift_feature or (driftable[0] if driftable else "")
    if shift and drift_feature not in driftable:
        raise ValueError(
            f"--drift-feature must be one of {', '.join(driftable)} (got {drift_feature!r})"
        )
    try:
        seed_int = int(str(seed).strip())
    except ValueError:
        raise ValueError(f"--seed must be an integer (got {seed!r})") from None
    return DemoOptions(
        seconds=secs,
        rate=per_s,
        seed=seed_int,
        drift_feature=drift_feature,
        drift_shift=shift,
        stream=stream,
    )


def demo_environment(environ: MutableMapping[str, str]) -> None:
    """The demo's own topic namespace and consumer groups, unless the user chose them; the
    workers inherit `environ`."""
    environ.setdefault("INFERSTREAM_TOPIC_NAMESPACE", DEMO_NAMESPACE)
    environ.setdefault("INFERSTREAM_APP_ID", DEMO_APP_ID)


def reset_drift_checkpoints(settings: Settings) -> int:
    """The demo injects its own drift: its detector starts from the reference, not from the
    windows a previous demo left. Only the demo's own namespace is touched, never the user's."""
    if settings.topic_namespace != DEMO_NAMESPACE:
        return 0
    prefix = get_plugin(DEFAULT_STREAM).topics(settings.topic_namespace).prefix
    store = RedisStateStore(settings.redis_url, prefix="inferstream:drift:")
    return store.delete_matching(f"*:{prefix}:*")


def skip_backlog(settings: Settings) -> int:
    """Requests an earlier demo left unscored (it was stopped, or fell behind) are skipped: the
    demo's groups start at the end of its requests topic. Only in the demo's own namespace.
    Returns how many requests were skipped."""
    if settings.topic_namespace != DEMO_NAMESPACE:
        return 0
    topic = get_plugin(DEFAULT_STREAM).topics(settings.topic_namespace).requests
    skipped = 0
    scoring = group_id(settings, "score")
    for group in (scoring, group_id(settings, "drift")):
        consumer = Consumer(
            {
                **client_config(settings),  # bootstrap and the security settings
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        try:
            partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
            ends = [TopicPartition(topic, p) for p in partitions]
            for end in ends:
                end.offset = consumer.get_watermark_offsets(end, timeout=10)[1]
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], 10)
            if group == scoring:
                skipped = sum(
                    end.offset - done.offset
                    for end, done in zip(ends, committed, strict=True)
                    if done.offset >= 0
                )
            consumer.commit(offsets=ends, asynchronous=False)
        except KafkaException:
            pass  # e.g. a worker of that group is running: it keeps its offsets
        finally:
            consumer.close()
    return max(skipped, 0)


def _produce(
    settings: Settings, options: DemoOptions, stats: DemoStats, stop: threading.Event
) -> None:
    try:
        _produce_paced(settings, options, stats, stop)
    except Exception as exc:  # reported in the summary; the demo then fails
        stats.produce_error = f"{type(exc).__name__}: {exc}"


def _produce_paced(
    settings: Settings, options: DemoOptions, stats: DemoStats, stop: threading.Event
) -> None:
    plugin = options.plugin
    spec = plugin.topics(settings.topic_namespace)
    drift_after = int(options.rate * options.seconds / 2)
    drift = (
        DriftInjection(after=drift_after, feature=options.drift_feature, shift=options.drift_shift)
        if options.drift_shift
        else None
    )
    assert plugin.generator is not None  # parse_options checked
    generator = plugin.generator(options.seed, drift, {})
    producer = RequestProducer(settings, spec, check_records=False)  # the generator's records
    started = time.monotonic()
    chunk = max(1, int(options.rate / 50))  # 20 ms worth of events at a time
    sent = 0
    while not stop.is_set() and time.monotonic() - started < options.seconds:
        records = generator.generate(chunk)
        for record in records:  # ids of this run only (the generator's repeat per seed)
            record["request_id"] = rid = str(uuid.uuid4())
            stats.produced_ids.add(rid)
        producer.send_many(records)
        sent += chunk
        stats.produced.add(chunk)
        ahead = sent / options.rate - (time.monotonic() - started)
        if ahead > 0:
            stop.wait(ahead)
    stats.produce_s = time.monotonic() - started
    producer.flush()


def _watch_consumer(settings: Settings, stream: str) -> tuple[Consumer, dict[str, str]]:
    spec = get_plugin(stream).topics(settings.topic_namespace)
    topics = {
        spec.results: "result",
        spec.provenance: "provenance",
        spec.dlq: "dlq",
        drift_alerts_topic(settings.topic_namespace): "alert",
    }
    consumer = Consumer(
        {
            **client_config(settings),  # bootstrap and the security settings
            "group.id": f"{group_id(settings, 'score')}-view",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(timeout=15).topics
    consumer.assign(
        [TopicPartition(t, p, OFFSET_END) for t in topics for p in metadata[t].partitions]
    )
    return consumer, topics


@contextlib.contextmanager
def _shielded(console: Console) -> Iterator[None]:
    """Cleanup that a second Ctrl-C or SIGTERM must not cut short (the workers would be left
    running); it is bounded by WorkerProcess.stop's own timeouts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: object) -> None:
        console.print("stopping the workers, please wait ...")

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(
    settings: Settings, options: DemoOptions, console: Console, stats: DemoStats | None = None
) -> tuple[DemoStats, float]:
    """Run it; returns the stats and the seconds since producing began. The workers are
    stopped however this ends (an error, KeyboardInterrupt)."""
    stats = DemoStats() if stats is None else stats
    spec = options.plugin.topics(settings.topic_namespace)
    ensure_topics(
        settings.kafka_bootstrap,
        [options.stream],
        settings.topic_partitions,
        settings.topic_replication,
        settings.topic_namespace,
    )
    reset_drift_checkpoints(settings)
    skipped = skip_backlog(settings)
    if skipped:
        console.print(f"skipped {skipped:,} requests an earlier demo left unscored")
    behind = BehindTracker(options.rate)
    stats.stream = options.stream
    worker = WorkerProcess(None, options.stream)
    drift_worker = WorkerProcess(None, options.stream)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(settings, options, stats, stop), daemon=True)
    consumer: Consumer | None = None
    started = time.monotonic()
    try:
        console.print(
            f"starting a scoring worker and a drift worker on topics {spec.prefix}.* "
            f"(consumer group {group_id(settings, 'score')}) ...",
            soft_wrap=True,
        )
        worker.start()
        drift_worker.start_role("drift")
        assert worker.proc is not None and drift_worker.proc is not None
        console.print(f"worker pids: scoring {worker.proc.pid}, drift {drift_worker.proc.pid}")
        decode = AvroDeserializer(registry_from_settings(settings))
        consumer, kinds = _watch_consumer(settings, options.stream)
        started = time.monotonic()
        producer.start()
        note = (
            f"drift: +{options.drift_shift} sd on {options.drift_feature} at the halfway mark"
            if options.drift_shift
            else "no drift injected"
        )
        with Live(
            render(stats, 0, options.seconds, note), console=console, refresh_per_second=4
        ) as live:
            # run until the producer is done and the results have caught up (or DRAIN_S more)
            while producer.is_alive() or (
                stats.lag > 0
                and stats.produce_error is None
                and time.monotonic() - started < options.seconds + DRAIN_S
            ):
                for message in _arrived(consumer):
                    if message.error() is not None:
                        continue
                    _account(stats, kinds[message.topic()], message, decode, options.plugin)
                if behind.update(stats.lag):
                    live.console.print(behind_line(stats, options.rate), soft_wrap=True)
                live.update(
                    render(stats, time.monotonic() - started, options.seconds, note, behind)
                )
                for process in (worker, drift_worker):
                    if not process.running:
                        raise RuntimeError("a worker exited:\n" + "\n".join(process.lines))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        with _shielded(console):
            if producer.is_alive():
                producer.join(10)
            if consumer is not None:
                consumer.close()
            worker.stop()
            drift_worker.stop()
    console.print()
    console.print(summary(stats, elapsed, behind, options.rate), highlight=False, soft_wrap=True)
    return stats, elapsed


def _arrived(consumer: Consumer) -> list:
    """What has arrived, as soon as anything has: consume(n, timeout) alone would wait for n
    records or the whole timeout and stamp arrivals late."""
    first = consumer.poll(0.1)
    return [] if first is None else [first, *consumer.consume(1000, 0)]


def _header(message: object, name: str) -> str | None:
    for key, value in message.headers() or []:  # type: ignore[attr-defined]
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


def _account(
    stats: DemoStats,
    kind: str,
    message: object,
    decode: AvroDeserializer,
    plugin: StreamPlugin,
) -> None:
    arrived_ms = time.time() * 1000
    if kind == "dlq":
        if stats.answer(_header(message, "request_id")):
            stats.dead_letters += 1
        return
    try:
        value = decode(message.value())  # type: ignore[attr-defined]
    except DecodeError:
        return
    if kind == "result":
        if not stats.answer(value["request_id"]):
            return
        produced_ms = value["served_at"].timestamp() * 1000 - value["latency_ms"]
        stats.add_result(arrived_ms - produced_ms, bool(plugin.flagged and plugin.flagged(value)))
    elif kind == "provenance":
        if value["batch_id"] != getattr(stats, "_last_batch", None):
            stats._last_batch = value["batch_id"]  # type: ignore[attr-defined]
            stats.batch_sizes.append(value["batch_size"])
    elif kind == "alert":
        line = f"{value['state']} (D={value['statistic']:.3f}, z={value['z']:.1f})"
        stats.alerts.append(f"{value['feature']} {line}")
        if value["state"] == "RESOLVED":
            stats.open_alerts.pop(value["feature"], None)
        else:
            stats.open_alerts[value["feature"]] = line
