"""Settings from INFERSTREAM_* environment variables, with defaults for the local stack.

Each field of `Settings` is declared once, with its type, default, one-line doc and valid
range; `INFERSTREAM_<NAME>` sets field `name`. `Settings.from_env()` rejects an unknown
INFERSTREAM_* variable, an unparsable value and an out-of-range one with a `SettingsError`
naming the variable, the value and what is valid, before any work starts.
"""

from __future__ import annotations

import difflib
import math
import os
import typing
from dataclasses import Field, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parent.parent
# The data the code reads (schemas/, models/, ops/): a checkout's, at its root; an installed
# package's (a wheel, `pip install .`), copied into pipeline/_data by the build (setup.py),
# since site-packages is no repository root.
INSTALLED_DATA = Path(__file__).resolve().parent / "_data"
DATA_ROOT = INSTALLED_DATA if INSTALLED_DATA.is_dir() else REPO_ROOT
ENV_PREFIX = "INFERSTREAM_"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]

LOG_LEVELS: tuple[str, ...] = typing.get_args(LogLevel)

# INFERSTREAM_* variables that are not settings, read by tools of their own.
OTHER_VARIABLES = frozenset({"INFERSTREAM_BENCH_BASELINE_PYTHON"})


def meta(
    doc: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None
) -> dict[str, Any]:
    """A setting's field metadata: its one-line doc and, for numbers, the valid range."""
    return {"doc": doc, "ge": ge, "gt": gt, "le": le, "env": True}


@dataclass(frozen=True)
class Settings:
    """Every knob a deployment may set; `INFERSTREAM_<NAME>` overrides `name`."""

    kafka_bootstrap: str = field(default="127.0.0.1:9092", metadata=meta("Kafka bootstrap servers"))
    redis_url: str = field(
        default="redis://127.0.0.1:6379/0",
        metadata=meta("Redis for cache, status and detector state"),
    )
    redis_timeout_ms: float = field(
        default=250.0,
        metadata=meta("a Redis call slower than this counts as Redis down (degraded)", gt=0),
    )
    request_id_window_s: int = field(
        default=600,
        metadata=meta(
            "a request id reused with a different payload within this window is dead-lettered"
            " (`duplicate-request-id`); 0: not checked",
            ge=0,
        ),
    )
    redis_retry_after_s: float = field(
        default=2.0,
        metadata=meta("after a failed Redis call, the cache is skipped this long", gt=0),
    )
    schema_registry_url: str = field(
        default="", metadata=meta("Confluent Schema Registry; empty: schema ids from `schemas/`")
    )
    schemas_dir: Path = field(
        default=DATA_ROOT / "schemas", metadata=meta("Avro schemas, every version kept")
    )
    models_dir: Path = field(
        default=DATA_ROOT / "models", metadata=meta("model directories (`<name>/<version>/`)")
    )
    state_dir: Path = field(
        default=Path.home() / ".local" / "state" / "inferstream",
        metadata=meta("stack data, pid files, Faust data"),
    )
    cache_dir: Path = field(
        default=Path.home() / ".cache" / "inferstream",
        metadata=meta("Kafka jars, drift calibrations"),
    )
    app_id: str = field(
        default="inferstream",
        metadata=meta(
            "consumer group of the scoring engine, after the namespace: `<namespace><app id>`"
            " (drift: `...-drift`)"
        ),
    )
    topic_namespace: str = field(
        default="", metadata=meta("prefix of every topic name, e.g. `staging.`")
    )
    topic_partitions: int = field(
        default=4, metadata=meta("partitions of topics that `topics ensure` creates", ge=1)
    )
    topic_replication: int = field(default=1, metadata=meta("their replication factor", ge=1))
    # the engine (pipeline/engine): micro-batches, commits, backpressure
    batch_max: int = field(default=256, metadata=meta("largest micro-batch", ge=1))
    latency_slo_ms: float = field(
        default=25.0,
        metadata=meta(
            "event-age objective (record timestamp to delivery) the batcher sizes batches for", gt=0
        ),
    )
    commit_interval_s: float = field(
        default=0.5,
        metadata=meta(
            "delivered offsets are committed this often (and at every revoke and stop)", ge=0
        ),
    )
    engine_stall_s: float = field(
        default=1.0,
        metadata=meta("a handler that takes no batch this long gets its partitions paused", gt=0),
    )
    consumer_prefetch_kbytes: int = field(
        default=8192,
        metadata=meta(
            "librdkafka's prefetch bound per engine (`queued.max.messages.kbytes`)",
            ge=1,
            le=2097151,
        ),
    )
    consumer_session_timeout_ms: int = field(
        default=45000,
        metadata=meta(
            "a worker silent this long (killed, frozen) loses its partitions to the others",
            ge=6000,  # the broker's group.min.session.timeout.ms default
            le=300000,  # ... and its group.max.session.timeout.ms
        ),
    )
    group_instance_id: str = field(
        default="",
        metadata=meta(
            "static membership: a restarted worker with this id gets its partitions back at once "
            "(`--processes N` appends `-<index>`)"
        ),
    )
    producer_linger_ms: float = field(
        default=1.0, metadata=meta("producer linger", ge=0, le=900000)
    )
    output_compression: Compression = field(
        default="none", metadata=meta("compression of results, provenance, dead letters")
    )
    publish_timeout_s: float = field(
        default=60.0,
        metadata=meta("outputs undelivered by then: the worker exits, uncommitted", gt=0),
    )
    model_timeout_s: float = field(default=5.0, metadata=meta("one model call's timeout", gt=0))
    model_retries: int = field(
        default=2, metadata=meta("retries before a batch is dead-lettered", ge=0)
    )
    inference_threads: int = field(default=1, metadata=meta("ONNX Runtime intra-op threads", ge=1))
    # 1024 measured best on 2 CPU cores (180 short docs/s vs 145 at 2048); GPUs want more
    max_batch_tokens: int = field(
        default=1024,
        metadata=meta(
            "token streams (documents): padded tokens (rows x longest) of one model call; "
            "an engine window holds about 4x this",
            ge=16,
        ),
    )
    execution_providers: tuple[str, ...] = field(
        default=(),
        metadata=meta(
            "comma list of ONNX Runtime providers, e.g. `CPUExecutionProvider`; "
            "empty: TensorRT, CUDA, CPU, the first available"
        ),
    )
    log_level: LogLevel = field(default="WARNING", metadata=meta("JSON logs on stderr"))
    # -- metrics (pipeline/metrics: /metrics, /ui, cost units, the stack's Prometheus) --------
    metrics: Literal["on", "off"] = field(
        default="on",
        metadata=meta("instrument the engines and serve `/metrics` + `/ui`; off: neither"),
    )
    metrics_bind: str = field(default="127.0.0.1", metadata=meta("address `/metrics` listens on"))
    metrics_port: int = field(
        default=0,
        metadata=meta(
            "`/metrics` TCP port; 0: any free port, listed in the targets directory", ge=0, le=65535
        ),
    )
    metrics_targets_dir: str = field(
        default="",
        metadata=meta(
            "Prometheus file_sd directory each process lists its `/metrics` in;"
            " empty: `<state dir>/prometheus/targets`"
        ),
    )
    metrics_top_tenants: int = field(
        default=10,
        metadata=meta("tenants with a label of their own; the rest count as `other`", ge=0),
    )
    cost_per_cpu_second: float = field(
        default=1.0, metadata=meta("cost units per CPU-second of model time", ge=0)
    )
    cost_per_gpu_second: float = field(
        default=1.0, metadata=meta("cost units per GPU-second of model time", ge=0)
    )
    prometheus_url: str = field(
        default="http://127.0.0.1:9090",
        metadata=meta(
            "the Prometheus `inferstream top --prometheus` reads (pipeline/stack/prometheus.py)"
        ),
    )
    # -- end of metrics --------------------------------------------------------------------
    # -- the HTTP gateway (pipeline/gateway, `inferstream gateway`) ---------------------------
    gateway_host: str = field(default="127.0.0.1", metadata=meta("address the gateway listens on"))
    gateway_port: int = field(
        default=8080, metadata=meta("the gateway's TCP port; 0: any free port", ge=0, le=65535)
    )
    gateway_max_body_kbytes: int = field(
        default=1024, metadata=meta("a larger request body is refused with 413", ge=1)
    )
    gateway_max_requests: int = field(
        default=1000, metadata=meta("most requests in one POST (more: 413)", ge=1)
    )
    gateway_status_ttl_s: int = field(
        default=86400,
        metadata=meta("how long a request's status and result stay pollable by id", ge=1),
    )
    gateway_idempotency_ttl_s: int = field(
        default=86400, metadata=meta("how long an `Idempotency-Key` replays its answer", ge=1)
    )
    gateway_produce_timeout_s: float = field(
        default=5.0,
        metadata=meta("a request the broker has not acknowledged by then is answered 503", gt=0),
    )
    gateway_breaker_failures: int = field(
        default=5, metadata=meta("consecutive Kafka failures that open the gateway's breaker", ge=1)
    )
    gateway_breaker_reset_s: float = field(
        default=5.0, metadata=meta("an open breaker lets a probe through after this long", gt=0)
    )
    gateway_max_wait_s: float = field(
        default=30.0, metadata=meta("longest `?wait=` long poll", gt=0)
    )
    gateway_row_cost: float = field(
        default=1.0,
        metadata=meta(
            "cost units (model-ms) of one request when its manifest gives no cost figure", gt=0
        ),
    )

    def __post_init__(self) -> None:
        for f in env_fields():
            value = getattr(self, f.name)
            normal = _normalize(f, value)
            if normal is not value:
                object.__setattr__(self, f.name, normal)
            problem = _problem(f, normal)
            if problem:
                raise SettingsError(_message(f, repr(value), problem))

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default os.environ); a SettingsError for any bad variable."""
        env = os.environ if environ is None else environ
        known = {variable(f): f for f in env_fields()}
        for name in sorted(env):
            if name.startswith(ENV_PREFIX) and name not in known and name not in OTHER_VARIABLES:
                raise SettingsError(_unknown_message(name, list(known)))
        values: dict[str, object] = {}
        for name, f in known.items():
            raw = env.get(name)
            if raw is None:
                continue
            value = _normalize(f, _parse(f, raw))
            problem = _problem(f, value)
            if problem:
                raise SettingsError(_message(f, repr(raw), problem))
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]


def settings() -> Settings:
    return Settings.from_env()


def env_fields() -> list[Field]:
    """The fields an INFERSTREAM_* variable sets, in declaration order."""
    return [f for f in fields(Settings) if f.metadata.get("env")]


def variable(f: Field) -> str:
    return f"{ENV_PREFIX}{f.name.upper()}"


@cache
def _types() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _choices(f: Field) -> tuple[str, ...]:
    kind = _types()[f.name]
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()


def _parse(f: Field, raw: str) -> object:
    kind = _types()[f.name]
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise SettingsError(_message(f, repr(raw), _expected(f))) from None
    if kind is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise SettingsError(_message(f, repr(raw), _expected(f))) from None
    if kind is Path:
        return Path(raw).expanduser()
    if typing.get_origin(kind) is tuple:  # a comma list
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


def _normalize(f: Field, value: object) -> object:
    """Literal values case-insensitively to their canonical spelling; ints as floats."""
    choices = _choices(f)
    if choices and isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.strip().lower():
                return choice
    if _types()[f.name] is float and type(value) is int:
        return float(value)
    return value


def _problem(f: Field, value: object) -> str | None:
    """Why `value` is not valid for `f` (the expected range or choices), or None."""
    kind = _types()[f.name]
    choices = _choices(f)
    if choices:
        return None if value in choices else _expected(f)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)  # type: ignore[arg-type]
    elif kind is Path:
        return None if isinstance(value, Path) else "expected a path"
    elif typing.get_origin(kind) is tuple:
        if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            return "expected a comma list"
        return _provider_problem(value) if f.name == "execution_providers" else None
    else:
        return None if isinstance(value, str) else "expected a string"
    m = f.metadata
    if ok and m.get("ge") is not None and value < m["ge"]:  # type: ignore[operator]
        ok = False
    if ok and m.get("gt") is not None and value <= m["gt"]:  # type: ignore[operator]
        ok = False
    if ok and m.get("le") is not None and value > m["le"]:  # type: ignore[operator]
        ok = False
    return None if ok else _expected(f)


def _expected(f: Field) -> str:
    choices = _choices(f)
    if choices:
        case = " (case-insensitive)" if f.name == "log_level" else ""
        return f"expected one of {', '.join(choices)}{case}"
    what = "an integer" if _types()[f.name] is int else "a number"
    ge, gt, le = (f.metadata.get(k) for k in ("ge", "gt", "le"))
    low = ge if ge is not None else gt
    if low is not None and le is not None:
        left = "[" if ge is not None else "("
        return f"expected {what} in {left}{_num(low)}, {_num(le)}]"
    if ge is not None:
        return f"expected {what} >= {_num(ge)}"
    if gt is not None:
        return f"expected {what} > {_num(gt)}"
    if le is not None:
        return f"expected {what} <= {_num(le)}"
    return f"expected {what}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _message(f: Field, shown: str, problem: str) -> str:
    return f"invalid {variable(f)}={shown}: {problem}"


def _unknown_message(name: str, known: list[str]) -> str:
    suffixes = {k.removeprefix(ENV_PREFIX): k for k in known}
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(suffixes), n=1)
    hint = f"did you mean {suffixes[close[0]]}?" if close else f"known: {', '.join(known)}"
    return f"unknown environment variable {name}; {hint}"


def _provider_problem(names: tuple[str, ...]) -> str | None:
    """Unknown ONNX Runtime provider names; not checked when onnxruntime is not installed."""
    if not names:
        return None
    try:
        import onnxruntime
    except ImportError:
        return None  # the runtime reports it when a model is loaded
    known = list(onnxruntime.get_all_providers())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            return (
                f"unknown execution provider {name!r}; {hint}expected a comma list of "
                f"ONNX Runtime providers: {', '.join(known)}"
            )
    return None
