"""Submitting a job: validate the input, cost it, journal its spec, send what is not done yet.

Each document is one request `<job id>/<document id>` with header `job`; each bad line is a
dead letter on the stream's dead-letter topic with the same headers the worker's dead letters
have (stage `submit`), so the job's error file and its failed count have one source and
survive a lost Redis like everything else. Submitting a job again (same stream and `--name`)
sends only the documents neither completed nor failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.core.messages import OutboundMessage
from pipeline.core.plugin import StreamPlugin
from pipeline.core.registry import get_plugin
from pipeline.jobs.cost import model_cost
from pipeline.jobs.exceptions import JobError
from pipeline.jobs.inputs import Document, InputError, Inputs
from pipeline.jobs.lifecycle import settle
from pipeline.jobs.spec import JOB_HEADER, JobSpec, job_id_for, now_ms, request_id
from pipeline.jobs.states import TERMINAL
from pipeline.scoring.dead_letters import HEADER_PREFIX


@dataclass(frozen=True)
class Submitted:
    spec: JobSpec
    sent: int  # documents sent as requests now
    skipped: int  # already completed or failed before
    resumed: bool  # the job existed
    to_send_tokens: int  # estimated tokens of what was sent now


def job_plugin(stream: str) -> StreamPlugin:
    plugin = get_plugin(stream)  # an unknown stream: UnknownStreamError (exit 2)
    if not getattr(plugin, "job_field", None):
        raise JobError(f"stream {stream!r} does not take document jobs", exit_code=2)
    return plugin


def prepare_spec(
    settings: Settings,
    plugin: StreamPlugin,
    inputs: Inputs,
    name: str,
    budget: float | None,
    existing: JobSpec | None,
) -> JobSpec:
    from pipeline.models.manifest import resolve_model_dir

    cost = model_cost(resolve_model_dir(settings.models_dir, plugin.model_name))
    tokens = cost.estimate_tokens([d.text for d in inputs.documents])
    spec = JobSpec(
        job_id=job_id_for(plugin.name, name),
        name=name,
        stream=plugin.name,
        source=str(inputs.source),
        total=inputs.total,
        input_errors=len(inputs.errors),
        seconds_per_token=cost.seconds_per_token,
        estimated_tokens=tokens,
        budget=budget,
        model_version=cost.version,
        created_at_ms=now_ms(),
    )
    if existing is not None:  # the job goes on: its creation time, and its budget unless raised
        spec = spec.with_changes(
            created_at_ms=existing.created_at_ms,
            budget=existing.budget if budget is None else budget,
        )
    return spec


def send(
    settings: Settings,
    store: Any,  # pipeline.redis.jobs.JobStore
    plugin: StreamPlugin,
    inputs: Inputs,
    spec: JobSpec,
    resumed: bool,
) -> Submitted:
    """Journal + store the spec, then send the documents not yet settled and the bad lines."""
    from pipeline.jobs.topics import ensure_journal, journal
    from pipeline.kafka.producer import RequestProducer
    from pipeline.kafka.publisher import Publisher

    topics = plugin.topics(settings.topic_namespace)
    ensure_journal(settings)
    publisher = Publisher.from_settings(settings)
    state = store.state(spec.job_id) if resumed else None
    if state == "completed":  # submitted again: nothing to do, unless the input grew
        settled = store.require(store.settled_documents(spec.job_id), "the job") or set()
        new = [k for k in inputs.document_keys() if k not in settled]
        if new:
            raise JobError(
                f"job {spec.job_id} is completed; its input now has {len(new)} more "
                "document(s): submit them under another --name",
                exit_code=2,
            )
        return Submitted(spec, 0, inputs.total, True, 0)
    if state in TERMINAL:
        raise JobError(f"job {spec.job_id} is {state}; submit under another --name", 2)
    if state == "budget_exceeded":
        snapshot = store.snapshot(spec.job_id)
        spent = snapshot.counts.cost(spec.seconds_per_token) if snapshot else 0.0
        if spec.budget is not None and spent >= spec.budget:
            raise JobError(
                f"job {spec.job_id} has spent {spent:.2f} model-seconds of its budget of "
                f"{spec.budget:g}; give a larger --budget to continue it",
                exit_code=2,
            )
    if not store.put_spec(spec, "validating" if state is None else None):
        store.require(None, "the job")
    journal(settings, spec, publisher)  # after the checks: a refused submit changes nothing
    settled = store.require(store.settled_documents(spec.job_id), "the job") or set()
    documents = [d for d in inputs.documents if d.id not in settled]
    errors = [e for e in inputs.errors if e.key not in settled]
    store.clear_deferred(spec.job_id)  # every refused document is among those sent again
    if state in (None, "validating", "budget_exceeded"):
        store.move(spec.job_id, state or "validating", "in_progress")
    store.mark_started(spec.job_id)
    publisher.publish([_input_dead_letter(topics.dlq, spec.job_id, e) for e in errors])
    job_field = plugin.job_field  # type: ignore[attr-defined]
    headers = {JOB_HEADER: spec.job_id}
    with RequestProducer(settings, topics) as producer:
        for document in documents:
            producer.send(_request(spec.job_id, job_field, document), headers=headers)
    settle(store, spec.job_id)  # every output may have been counted already (or none to send)
    tokens = spec.estimated_tokens
    if documents and len(documents) < len(inputs.documents):
        tokens = round(tokens * len(documents) / len(inputs.documents))
    skipped = inputs.total - len(documents) - len(errors)
    return Submitted(spec, len(documents), skipped, resumed, tokens if documents else 0)


def _request(job_id: str, job_field: str, document: Document) -> dict[str, Any]:
    return {
        "request_id": request_id(job_id, document.id),
        job_field: job_id,
        "document_id": document.id,
        "text": document.text,
        "tenant": document.tenant,
        "metadata": document.metadata,
        "long_policy": None,  # the stream's default (chunk long texts)
    }


def _input_dead_letter(dlq: str, job_id: str, error: InputError) -> OutboundMessage:
    """A bad line as the worker would have dead-lettered it, with stage `submit`."""
    rid = request_id(job_id, error.key)
    headers = [
        ("request_id", rid.encode()),
        (JOB_HEADER, job_id.encode()),
        (f"{HEADER_PREFIX}stage", b"submit"),
        (f"{HEADER_PREFIX}reason", error.reason.encode()),
        (f"{HEADER_PREFIX}detail", f"{error.where}: {error.detail}".encode()[:2000]),
        (f"{HEADER_PREFIX}failed_at", str(now_ms()).encode()),
        (f"{HEADER_PREFIX}worker", b"jobs-submit"),
    ]
    key = None if error.document_id is None else error.document_id.encode()
    return OutboundMessage(dlq, key, error.raw, headers)
