"""An oversized dead letter is cut to fit the producer's size limit; nothing else is."""

from __future__ import annotations

from pipeline.core.messages import OutboundMessage
from pipeline.kafka.publisher import fit_dead_letter

LIMIT = 1_000_000


def test_an_oversized_dead_letter_keeps_its_first_64_kib_and_says_so() -> None:
    value = bytes(range(256)) * 40_000  # 10 MB
    message = OutboundMessage("s.dlq", b"k", value, [("dlq.reason", b"bad-avro")])
    fitted = fit_dead_letter(message, LIMIT)
    assert fitted.value == value[: 64 * 1024]
    headers = dict(fitted.headers)
    assert headers["dlq.value.truncated"] == b"true"
    assert headers["dlq.value.bytes"] == str(len(value)).encode()
    assert headers["dlq.reason"] == b"bad-avro"


def test_dead_letters_within_the_limit_and_other_outputs_are_left_alone() -> None:
    small = OutboundMessage("s.dlq", None, b"x" * 1000, [("dlq.reason", b"bad-avro")])
    assert fit_dead_letter(small, LIMIT) is small
    result = OutboundMessage("s.results", None, b"x" * (2 * LIMIT), [("request_id", b"1")])
    assert fit_dead_letter(result, LIMIT) is result  # too big: fails loudly in librdkafka


def test_many_headers_count_against_the_limit() -> None:
    headers = [("dlq.reason", b"r"), *((f"h{i}", b"v" * 100) for i in range(5000))]
    message = OutboundMessage("s.dlq", None, b"x" * 600_000, headers)
    fitted = fit_dead_letter(message, LIMIT)
    assert len(fitted.value) <= 64 * 1024
