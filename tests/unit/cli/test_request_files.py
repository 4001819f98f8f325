"""JSON-lines request files: every bad line is named with its number and reason."""

import json

from pipeline.codec import SchemaCatalog
from pipeline.config import REPO_ROOT
from pipeline.fraud.generator import TransactionGenerator
from pipeline.request_files import load_jsonl

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
