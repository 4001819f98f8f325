"""JSON-lines request files: every bad line is named with its number and reason."""

import json

from pipeline.cli.request_files import load_jsonl
from pipeline.codec import SchemaCatalog
from pipeline.config import REPO_ROOT
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator

SCHEMA = SchemaCatalog(REPO_ROOT / "schemas").latest("fraud_request")


def write(tmp_path, lines):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_valid_lines_load_and_iso_times_become_epoch_millis(tmp_path):
    record = TransactionGenerator(seed=1).generate(1).records[0]
    iso = {**record, "event_time": "2026-11-23T10:00:00+00:00"}
    no_id = {k: v for k, v in record.items() if k != "request_id"}
    records, errors = load_jsonl(write(tmp_path, [json.dumps(iso), "", json.dumps(no_id)]), SCHEMA)
    assert errors == []
    assert records[0]["event_time"] == 1_795_428_000_000
    assert records[1]["request_id"] == ""  # the producer assigns one


def test_each_bad_line_is_reported_with_its_number(tmp_path):
    good = TransactionGenerator(seed=2).generate(1).records[0]
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**good, "amount": "12"}),
        json.dumps({**good, "channel": "CARD"}),
        json.dumps({k: v for k, v in good.items() if k != "card_id"}),
        json.dumps({**good, "colour": "red"}),
        json.dumps({**good, "event_time": "2026-11-23T10:00:00"}),
        json.dumps(good).replace(str(good["amount"]), "NaN", 1),
    ]
    records, errors = load_jsonl(write(tmp_path, lines), SCHEMA)
    assert len(records) == 1
    reasons = {e.line: e.reason for e in errors}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "not JSON" in reasons[2]
    assert "JSON object" in reasons[3]
    assert "amount" in reasons[4]
    assert "POS/ATM/ECOM/MOTO" in reasons[5]
    assert "missing field card_id" in reasons[6]
    assert "colour" in reasons[7]
    assert "UTC offset" in reasons[8]
    assert "finite" in reasons[9]


def test_a_line_that_is_not_utf8_is_a_bad_line_not_a_crash(tmp_path):
    good = json.dumps(TransactionGenerator(seed=3).generate(1).records[0]).encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good[:10] + b"\xff\xfe" + good[10:] + b"\n")
    records, errors = load_jsonl(path, SCHEMA)
    assert len(records) == 1  # the byte-order mark of line 1 is not an error
    assert [(e.line, e.reason) for e in errors] == [(2, "not UTF-8: byte 0xff at column 11")]


def test_the_workers_preprocessing_checks_name_the_field_and_the_line(tmp_path):
    good = TransactionGenerator(seed=4).generate(3).records
    lines = [
        json.dumps(good[0]),
        json.dumps({**good[1], "amount": -3.0}),
        json.dumps({**good[2], "currency": "eur", "card_txn_count_1h": -1}),
        json.dumps({k: v for k, v in good[0].items() if k != "request_id"}),
        "{broken",
    ]
    path = write(tmp_path, lines)
    records, errors = load_jsonl(path, SCHEMA, build_features)
    assert [r["card_id"] for r in records] == [good[0]["card_id"], good[0]["card_id"]]
    assert records[1]["request_id"] == ""  # an empty id is the producer's to fill, not an error
    reasons = {e.line: e.reason for e in errors}
    assert sorted(reasons) == [2, 3, 5]
    assert [e.line for e in errors] == [2, 3, 5], "in line order"
    assert "amount -3 out of range" in reasons[2]
    assert "currency 'eur'" in reasons[3] and "card_txn_count_1h" in reasons[3]
    assert "not JSON" in reasons[5]

    schema_only, schema_errors = load_jsonl(path, SCHEMA)
    assert len(schema_only) == 4 and [e.line for e in schema_errors] == [5]
