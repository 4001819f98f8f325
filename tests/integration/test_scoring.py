"""The fraud stream end to end through the real broker: results, provenance, dead letters."""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
from confluent_kafka import Producer

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.core.canonical import float32_rows
from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring.provenance import data_hashes
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.streams.fraud.head import decision_head
from tests.integration.helpers import WorkerProcess, read_all, values

pytestmark = pytest.mark.integration

SERVING_TIME_FIELDS = {"served_at", "latency_ms"}


def produce(settings, records):
    spec = stream_topics("fraud", settings.topic_namespace)
    with RequestProducer(settings, spec) as producer:
        return producer.send_many(records)


def test_every_request_gets_one_result_and_one_provenance_record(settings, worker):
    generated = TransactionGenerator(seed=11).generate(5000).records
    ids = produce(settings, generated)
    spec = stream_topics("fraud", settings.topic_namespace)

    results = values(read_all(settings, spec.results, expected=5000))
    provenance = values(read_all(settings, spec.provenance, expected=5000))

    assert len(results) == 5000 and {r["request_id"] for r in results} == set(ids)
    assert len(provenance) == 5000 and {p["request_id"] for p in provenance} == set(ids)
    # each data_hash is recomputed from its request with the versioned preprocessing
    features = build_features(generated)
    expected_hash = dict(zip(ids, data_hashes(float32_rows(features.matrix)), strict=True))
    by_id = {p["request_id"]: p for p in provenance}
    assert all(by_id[i]["data_hash"] == expected_hash[i] for i in ids)
    some = provenance[0]
    assert some["source_topic"] == spec.requests
    assert some["execution_provider"] == "CPUExecutionProvider"
    assert len(some["model_sha256"]) == 64
    assert 1 <= some["batch_size"] <= 256
    assert all(r["decision"] in {"approve", "review", "decline"} for r in results)
    assert read_all(settings, spec.dlq, idle_timeout=2) == []


def test_malformed_messages_go_to_the_dlq_and_the_rest_is_scored(settings, worker):
    spec = stream_topics("fraud", settings.topic_namespace)
    registry = registry_from_settings(settings)
    good = TransactionGenerator(seed=5).generate(300).records
    for i, record in enumerate(good):
        record["request_id"] = f"good-{i}"
    encode = AvroSerializer(registry, registry.catalog.latest("fraud_request"), spec.requests)
    nan_amount = {**good[0], "request_id": "bad-nan", "amount": float("nan")}
    huge_amount = {**good[1], "request_id": "bad-range", "amount": 5e9}
    bad = {
        "bad-bytes": (b"card-x", b"this is not avro"),
        "bad-magic": (b"card-x", b"\x07" + encode(good[2])[1:]),
        "bad-truncated": (b"card-x", encode(good[3])[:20]),
        "bad-unknown-schema": (b"card-x", struct.pack(">bI", 0, 424242) + b"\x02"),
        "bad-nan": (b"card-x", encode(nan_amount)),
        "bad-range": (b"card-x", encode(huge_amount)),
        "bad-no-key": (None, encode({**good[4], "request_id": "bad-no-key"})),
    }
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    bad_cases = list(bad.items())
    for index, record in enumerate(good):
        producer.produce(spec.requests, key=record["card_id"].encode(), value=encode(record))
        if index % 40 == 0 and index // 40 < len(bad_cases):  # interleaved with the good ones
            name, (key, value) = bad_cases[index // 40]
            producer.produce(spec.requests, key=key, value=value, headers=[("case", name.encode())])
    producer.flush(30)

    results = values(read_all(settings, spec.results, expected=300))
    assert sorted(r["request_id"] for r in results) == sorted(r["request_id"] for r in good)
    dead = read_all(settings, spec.dlq, expected=len(bad))
    by_case = {r.headers["case"].decode(): r for r in dead}
    assert set(by_case) == set(bad)
    reasons = {case: r.headers["dlq.reason"].decode() for case, r in by_case.items()}
    assert reasons == {
        "bad-bytes": "bad-magic",
        "bad-magic": "bad-magic",
        "bad-truncated": "bad-avro",
        "bad-unknown-schema": "unknown-schema",
        "bad-nan": "invalid-feature",
        "bad-range": "invalid-feature",
        "bad-no-key": "missing-key",
    }
    for case, record in by_case.items():
        assert record.raw == bad[case][1], "the original bytes are kept"
        assert record.headers["dlq.source.topic"].decode() == spec.requests
        assert int(record.headers["dlq.source.offset"]) >= 0
        assert record.headers["dlq.detail"]
    assert "amount" in by_case["bad-nan"].headers["dlq.detail"].decode()


def test_kill_9_mid_stream_loses_no_request(settings, env):
    spec = stream_topics("fraud", settings.topic_namespace)
    generated = TransactionGenerator(seed=21).generate(20000).records
    ids = produce(settings, generated)
    worker = WorkerProcess(env).start()
    try:
        seen = read_all(settings, spec.results, expected=3000, idle_timeout=60)
        assert len(seen) >= 3000
        worker.kill9()
        worker.start()
        results = values(
            read_all(settings, spec.results, expected=None, idle_timeout=15, deadline_s=240)
        )
    finally:
        worker.stop()
    by_id: dict[str, list[dict]] = {}
    for result in results:
        by_id.setdefault(result["request_id"], []).append(result)
    assert set(by_id) == set(ids)
    for copies in by_id.values():
        first = {k: v for k, v in copies[0].items() if k not in SERVING_TIME_FIELDS}
        assert all(
            {k: v for k, v in c.items() if k not in SERVING_TIME_FIELDS} == first for c in copies
        )
    duplicates = sum(len(c) - 1 for c in by_id.values())
    print(f"kill -9 recovery: {len(ids)} requests, {duplicates} duplicate results")


def test_served_decisions_equal_the_offline_model(settings, worker):
    hand_made = [
        # an everyday grocery purchase at home
        dict(
            amount=23.5,
            card_avg_amount_30d=31.0,
            card_txn_count_1h=0,
            seconds_since_last_txn=86_400.0,
            channel="POS",
            merchant_category="5411",
            merchant_country="DE",
            card_country="DE",
            event_time=1_795_400_000_000,
        ),
        # a night-time foreign card-not-present spike during a velocity burst
        dict(
            amount=2900.0,
            card_avg_amount_30d=40.0,
            card_txn_count_1h=9,
            seconds_since_last_txn=35.0,
            channel="ECOM",
            merchant_category="5967",
            merchant_country="NG",
            card_country="DE",
            event_time=1_795_395_600_000,
        ),
        dict(
            amount=420.0,
            card_avg_amount_30d=150.0,
            card_txn_count_1h=2,
            seconds_since_last_txn=1200.0,
            channel="MOTO",
            merchant_category="4829",
            merchant_country="US",
            card_country="GB",
            event_time=1_795_410_000_000,
        ),
    ]
    requests = [
        {
            "request_id": f"hand-{i}",
            "tenant": "acme-bank",
            "card_id": f"card-h{i}",
            "account_id": f"acct-h{i}",
            "currency": "EUR",
            **fields,
        }
        for i, fields in enumerate(hand_made)
    ]
    produce(settings, requests)
    spec = stream_topics("fraud", settings.topic_namespace)
    served = {r["request_id"]: r for r in values(read_all(settings, spec.results, expected=3))}

    model = load_model(resolve_model_dir(settings.models_dir, "fraud", None))
    offline = decision_head(model.manifest)(model.predict(build_features(requests).matrix))
    offline_scores, offline_decisions = offline["score"], offline["decision"]
    for request, score, decision in zip(requests, offline_scores, offline_decisions, strict=True):
        got = served[request["request_id"]]
        assert got["decision"] == decision
        assert got["score"] == pytest.approx(float(score), abs=1e-6)
    assert Counter(offline_decisions)["approve"] >= 1
    assert np.isfinite(offline_scores).all()
