"""Result and error files: one line per document, however often it was published."""

from __future__ import annotations

import io
import json

from pipeline.core.messages import InboundMessage
from pipeline.core.topics import StreamTopics
from pipeline.jobs.events import JobEvent, events_from
from pipeline.jobs.results import RESULT_FIELDS, error_lines, unique_results, write_jsonl
from pipeline.jobs.spec import document_of, job_id_for, request_id
from pipeline.scoring.dead_letters import HEADER_PREFIX


def _result(doc: str, label: str) -> dict:
    return {"document_id": doc, "label": label, "label_score": 0.9, "tokens": 12,
            "model_version": "1.0.0", "embedding": [0.1] * 3, "request_id": "x"}  # fmt: skip


def test_a_result_published_twice_is_one_line_with_the_result_fields() -> None:
    lines = unique_results(
        [("a", _result("a", "first")), ("b", _result("b", "b")), ("a", _result("a", "again"))]
    )
    assert list(lines) == ["a", "b"]
    assert lines["a"]["label"] == "first"
    assert tuple(lines["a"]) == RESULT_FIELDS  # and nothing else (no request_id)
    out = io.StringIO()
    assert write_jsonl(lines.values(), out) == 2
    assert [json.loads(line)["document_id"] for line in out.getvalue().splitlines()] == ["a", "b"]


def test_errors_leave_out_documents_completed_after_a_refusal() -> None:
    lines = error_lines(
        [("a", "budget-exceeded", ""), ("b", "invalid-feature", "text: empty"),
         ("b", "invalid-feature", "text: empty"), ("c", "budget-exceeded", "")],
        completed={"a"},
    )  # fmt: skip
    assert lines == {
        "b": {"document_id": "b", "reason": "invalid-feature", "detail": "text: empty"},
        "c": {"document_id": "c", "reason": "budget-exceeded", "detail": ""},
    }


def test_request_ids_name_their_job_and_document() -> None:
    job = job_id_for("docs", "nightly")
    assert job == job_id_for("docs", "nightly") != job_id_for("docs", "other")
    assert document_of(job, request_id(job, "dir/a.txt")) == "dir/a.txt"
    assert document_of(job, request_id("job_other", "a")) is None


def test_events_come_from_headers_and_only_the_decoded_fields_they_need() -> None:
    topics = StreamTopics("docs", "t.")
    job = "job_1"

    def msg(topic: str, doc: str, value: dict | None, **extra: bytes) -> InboundMessage:
        headers = [("request_id", f"{job}/{doc}".encode()), ("job", job.encode())]
        headers += [(f"{HEADER_PREFIX}{k}", v) for k, v in extra.items()]
        return InboundMessage(topic, 0, 0, 0, doc.encode(), json.dumps(value).encode(), headers)

    messages = [
        msg(topics.results, "a", {"tokens": 40}),
        msg(topics.provenance, "a", {"cache_hit": True}),
        msg(topics.provenance, "b", {"cache_hit": False}),
        msg(topics.dlq, "c", None, reason=b"invalid-feature", detail=b"text: empty"),
        msg(topics.dlq, "d", None, reason=b"budget-exceeded"),
        msg(topics.dlq, "e", None, reason=b"job-cancelled"),
        InboundMessage(topics.results, 0, 1, 0, b"k", b"{}", [("request_id", b"live-1")]),
    ]
    events = events_from(messages, topics, lambda raw: json.loads(raw))
    assert events == [
        JobEvent("done", job, "a", tokens=40),
        JobEvent("cached", job, "a"),
        JobEvent("failed", job, "c", info='{"reason":"invalid-feature","detail":"text: empty"}'),
        JobEvent("deferred", job, "d"),
        JobEvent("cancelled", job, "e"),
    ]
