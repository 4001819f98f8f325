"""Run the demo: stack (if needed), topics, a worker, a paced producer, and the live view."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from rich.console import Console
from rich.live import Live

from pipeline.codec import AvroDeserializer, DecodeError, registry_from_settings
from pipeline.config import Settings
from pipeline.demo.metrics import DemoStats
from pipeline.demo.view import render, summary
from pipeline.fraud.generator import DriftSpec, TransactionGenerator
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.state import RedisStateStore
from pipeline.streams import drift_alerts_topic, stream_spec
from pipeline.worker_process import WorkerProcess


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 60.0
    rate: float = 2000.0
    seed: int = 7
    drift_feature: str = "amount"
    drift_shift: float = 1.0  # in standard deviations, injected halfway through


def _produce(
    settings: Settings, options: DemoOptions, stats: DemoStats, stop: threading.Event
) -> None:
    spec = stream_spec("fraud", settings.topic_namespace)
    drift_after = int(options.rate * options.seconds / 2)
    generator = TransactionGenerator(
        seed=options.seed,
        drift=DriftSpec(after=drift_after, feature=options.drift_feature, shift=options.drift_shift)
        if options.drift_shift
        else None,
    )
    producer = RequestProducer(settings, spec)
    started = time.monotonic()
    chunk = max(1, int(options.rate / 50))  # 20 ms worth of events at a time
    sent = 0
    while not stop.is_set() and time.monotonic() - started < options.seconds:
        producer.send_many(generator.generate(chunk).records)
        sent += chunk
        stats.produced.add(chunk)
        ahead = sent / options.rate - (time.monotonic() - started)
        if ahead > 0:
            stop.wait(ahead)
    producer.flush()


def _watch_consumer(settings: Settings) -> tuple[Consumer, dict[str, str]]:
    spec = stream_spec("fraud", settings.topic_namespace)
    topics = {
        spec.results: "result",
        spec.provenance: "provenance",
        spec.dlq: "dlq",
        drift_alerts_topic(settings.topic_namespace): "alert",
    }
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "inferstream-demo-view",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(timeout=15).topics
    consumer.assign(
        [TopicPartition(t, p, OFFSET_END) for t in topics for p in metadata[t].partitions]
    )
    return consumer, topics


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> DemoStats:
    ensure_topics(
        settings.kafka_bootstrap,
        ["fraud"],
        settings.topic_partitions,
        settings.topic_replication,
        settings.topic_namespace,
    )
    # the demo injects its own drift: start the detector from its reference, not from the
    # windows a previous demo left in its checkpoint
    RedisStateStore(settings.redis_url, prefix="inferstream:drift:").delete_matching(
        f"*:{stream_spec('fraud', settings.topic_namespace).prefix}:*"
    )
    console.print("starting a scoring worker and a drift worker ...")
    worker = WorkerProcess().start()
    try:
        drift_worker = WorkerProcess().start_role("drift")
    except RuntimeError:
        worker.stop()
        raise
    stats = DemoStats()
    decode = AvroDeserializer(registry_from_settings(settings))
    consumer, kinds = _watch_consumer(settings)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(settings, options, stats, stop), daemon=True)
    started = time.monotonic()
    producer.start()
    note = f"drift: +{options.drift_shift} sd on {options.drift_feature} at the halfway mark"
    try:
        with Live(
            render(stats, 0, options.seconds, note), console=console, refresh_per_second=4
        ) as live:
            # run until the producer is done and the results have caught up (or 15 s more)
            while producer.is_alive() or (
                stats.results.total < stats.produced.total - stats.dead_letters
                and time.monotonic() - started < options.seconds + 15
            ):
                for message in _arrived(consumer):
                    if message.error() is not None:
                        continue
                    _account(stats, kinds[message.topic()], message, decode)
                live.update(render(stats, time.monotonic() - started, options.seconds, note))
                for process in (worker, drift_worker):
                    if not process.running:
                        raise RuntimeError("a worker exited:\n" + "\n".join(process.lines))
    finally:
        stop.set()
        producer.join(10)
        consumer.close()
        worker.stop()
        drift_worker.stop()
    console.print()
    console.print(summary(stats, time.monotonic() - started))
    return stats


def _arrived(consumer: Consumer) -> list:
    """What has arrived, as soon as anything has: consume(n, timeout) alone would wait for n
    records or the whole timeout and stamp arrivals late."""
    first = consumer.poll(0.1)
    return [] if first is None else [first, *consumer.consume(1000, 0)]


def _account(stats: DemoStats, kind: str, message: object, decode: AvroDeserializer) -> None:
    arrived_ms = time.time() * 1000
    if kind == "dlq":
        stats.dead_letters += 1
        return
    try:
        value = decode(message.value())  # type: ignore[attr-defined]
    except DecodeError:
        return
    if kind == "result":
        produced_ms = value["served_at"].timestamp() * 1000 - value["latency_ms"]
        stats.add_result(arrived_ms - produced_ms, value["decision"])
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
