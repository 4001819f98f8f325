"""A job's specification: what was submitted, under which id, with which budget.

The job id is derived from the stream and the job's name, so submitting the same input with the
same `--name` again continues that job (its documents keep their request ids
`<job id>/<document id>`, and those already counted are skipped).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipeline.jobs.exceptions import JobError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
JOB_HEADER = "job"  # request header naming the job; the worker copies it onto its outputs


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise JobError(
            f"job name {name!r} must be 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit",
            exit_code=2,
        )
    return name


def new_name() -> str:
    return uuid.uuid4().hex[:12]


def job_id_for(stream: str, name: str) -> str:
    """`job_` + 16 hex digits of a hash of stream and name: the same name, the same job."""
    digest = hashlib.blake2b(f"{stream}\0{name}".encode(), digest_size=8).hexdigest()
    return f"job_{digest}"


def request_id(job_id: str, document_id: str) -> str:
    return f"{job_id}/{document_id}"


def document_of(job_id: str, request_id_value: str) -> str | None:
    """The document id of one of this job's request ids, or None when it is another's."""
    prefix = f"{job_id}/"
    return request_id_value[len(prefix) :] if request_id_value.startswith(prefix) else None


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    name: str
    stream: str
    source: str  # the input's absolute path: what `jobs resume` reads again
    total: int  # documents in the input, bad ones included
    input_errors: int
    seconds_per_token: float  # the model's measured cost (manifest metrics)
    estimated_tokens: int  # of every document of the input, at submit
    budget: float | None = None  # model-seconds; None: no limit
    model_version: str = ""
    created_at_ms: int = 0
    cancelled: bool = False

    @property
    def estimated_cost(self) -> float:
        return self.estimated_tokens * self.seconds_per_token

    def with_changes(self, **changes: Any) -> JobSpec:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobSpec:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        # records written by a newer version may carry fields this one does not know
        return cls(**{k: v for k, v in data.items() if k in known})
