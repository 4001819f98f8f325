"""Per-field type reasons: what fastavro's writer would coerce silently is named here."""

from __future__ import annotations

from pipeline.codec.checks import field_problems
from pipeline.codec.schemas import SchemaCatalog
from pipeline.config import REPO_ROOT
from pipeline.streams.fraud.generator import TransactionGenerator

SCHEMA = SchemaCatalog(REPO_ROOT / "schemas").latest("fraud_request")


def test_a_generated_record_has_no_problems() -> None:
    assert field_problems(TransactionGenerator(seed=1).generate(1).records[0], SCHEMA) == []


def test_values_fastavro_would_coerce_are_named_with_the_type_expected() -> None:
    record = TransactionGenerator(seed=1).generate(1).records[0]
    record.update(amount="12.5", card_txn_count_1h=2.7)
    del record["card_id"]
    assert field_problems(record, SCHEMA) == [
        "missing field card_id",
        "amount='12.5' is not a double",
        "card_txn_count_1h=2.7 is not an int",
    ]
