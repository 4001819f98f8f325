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
import re
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

# -- security (issue 16): types, the librdkafka passthrough prefix, what counts as secret -----
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
# INFERSTREAM_KAFKA_X_SOCKET_KEEPALIVE_ENABLE=true -> librdkafka `socket.keepalive.enable`
# (`_` is `.`, `__` a literal `_`), for every Kafka client of the process.
KAFKA_PASSTHROUGH_PREFIX = f"{ENV_PREFIX}KAFKA_X_"
# fields and passthrough keys whose values never appear in repr, logs or errors
SECRET_FIELDS = frozenset({"kafka_sasl_password", "redis_password"})
SECRET_KEY_WORDS = ("password", "secret", "jaas", "oauthbearer.config", "ssl.key.pem")
# -- end of security types --------------------------------------------------------------------


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
    # -- security (issue 16: pipeline/kafka/client_config.py, pipeline/redis/client.py) ------
    kafka_security_protocol: KafkaSecurityProtocol = field(
        default="PLAINTEXT",
        metadata=meta("librdkafka `security.protocol` of every Kafka client (Faust's too)"),
    )
    kafka_sasl_mechanism: SaslMechanism = field(
        default="SCRAM-SHA-512", metadata=meta("SASL mechanism (SASL_PLAINTEXT, SASL_SSL)")
    )
    kafka_sasl_username: str = field(default="", metadata=meta("SASL user name"))
    kafka_sasl_password_file: str = field(
        default="", metadata=meta("file holding the SASL password (one line); read at start")
    )
    kafka_sasl_password: str = field(
        default="",
        repr=False,
        metadata=meta("the SASL password itself, when there is no password file; never shown"),
    )
    kafka_ssl_ca_location: str = field(
        default="", metadata=meta("PEM file of the CA(s) the broker certificates must chain to")
    )
    kafka_ssl_certificate_location: str = field(
        default="", metadata=meta("client certificate (PEM) for TLS client authentication")
    )
    kafka_ssl_key_location: str = field(default="", metadata=meta("its private key (PEM)"))
    kafka_ssl_key_password_file: str = field(
        default="", metadata=meta("file holding the private key's password, if it has one")
    )
    redis_password_file: str = field(
        default="", metadata=meta("file holding the Redis password (`requirepass`/ACL user)")
    )
    redis_password: str = field(
        default="",
        repr=False,
        metadata=meta("the Redis password itself, when there is no password file; never shown"),
    )
    redis_tls_ca: str = field(
        default="", metadata=meta("PEM CA file a `rediss://` server's certificate must chain to")
    )
    # further librdkafka settings from INFERSTREAM_KAFKA_X_*; not a variable of its own
    kafka_extra: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # -- end of security ----------------------------------------------------------------------
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
    # -- schema registry (issue 18: pipeline/codec/registry.py, pipeline/stack/registry.py) ---
    schema_registry_timeout_s: float = field(
        default=5.0,
        metadata=meta("a Schema Registry call slower than this counts as the registry down", gt=0),
    )
    registry_java: str = field(
        default="",
        metadata=meta(
            "Java 21+ (a `java` binary or a JDK home) for `stack up --registry`; empty: "
            "JAVA_HOME, PATH, then /usr/lib/jvm/*"
        ),
    )
    # -- end of schema registry -----------------------------------------------------------------
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
    model_breaker_failures: int = field(
        default=3,
        metadata=meta(
            "batches in a row whose model call failed for good before the version's breaker "
            "opens (the fallback tier serves, or circuit-open dead letters)",
            ge=1,
        ),
    )
    model_breaker_reset_s: float = field(
        default=10.0,
        metadata=meta("an open model breaker lets one probe batch through after this long", gt=0),
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
    # one price for every cost figure (pipeline/scoring/provenance.py): 1 unit = 1 CPU-us,
    # the price the model build scripts write into manifests (a manifest's own price wins)
    cost_per_cpu_second: float = field(
        default=1e6,
        metadata=meta("cost units per CPU-second of model time (a manifest's price wins)", ge=0),
    )
    cost_per_gpu_second: float = field(
        default=1e6, metadata=meta("cost units per GPU-second of model time", ge=0)
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
    gateway_shed_wait_s: float = field(
        default=0.0,
        metadata=meta(
            "load shedding: 503 when the stream's lag / throughput exceeds this many seconds"
            " (x 2^priority of the key); 0: off",
            ge=0,
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
        problem = _security_problem(self)  # security block: combinations, files (issue 16)
        if problem:
            raise SettingsError(problem)

    def __repr__(self) -> str:  # security block: secrets redacted (dataclass repr is not used)
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "***" if value else ""
            elif f.name == "redis_url":
                value = redact_url(value)
            elif f.name == "kafka_extra":
                value = tuple((k, redact_value(k, v)) for k, v in value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default os.environ); a SettingsError for any bad variable."""
        env = os.environ if environ is None else environ
        known = {variable(f): f for f in env_fields()}
        for name in sorted(env):
            if name.startswith(ENV_PREFIX) and name not in known and name not in OTHER_VARIABLES:
                if name.startswith(KAFKA_PASSTHROUGH_PREFIX):  # security block (issue 16)
                    continue
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
        extra = kafka_passthrough(env)  # security block (issue 16)
        if extra:
            values["kafka_extra"] = extra
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


# -- security (issue 16) ----------------------------------------------------------------------

# librdkafka settings that have a variable of their own: the passthrough may not override them
_NAMED_KAFKA_KEYS = {
    "bootstrap.servers": "INFERSTREAM_KAFKA_BOOTSTRAP",
    "metadata.broker.list": "INFERSTREAM_KAFKA_BOOTSTRAP",
    "security.protocol": "INFERSTREAM_KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "INFERSTREAM_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "INFERSTREAM_KAFKA_SASL_MECHANISM",
    "sasl.username": "INFERSTREAM_KAFKA_SASL_USERNAME",
    "sasl.password": "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE",
    "ssl.ca.location": "INFERSTREAM_KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "INFERSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "INFERSTREAM_KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "INFERSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE",
}
_KAFKA_KEY = re.compile(r"[a-z0-9][a-z0-9._]*")


def kafka_passthrough(env: typing.Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The INFERSTREAM_KAFKA_X_* variables as librdkafka (key, value) pairs, sorted."""
    out = []
    for name in sorted(env):
        if not name.startswith(KAFKA_PASSTHROUGH_PREFIX):
            continue
        raw = name.removeprefix(KAFKA_PASSTHROUGH_PREFIX)
        key = raw.lower().replace("__", "\0").replace("_", ".").replace("\0", "_")
        if not _KAFKA_KEY.fullmatch(key):
            raise SettingsError(
                f"invalid {name}: no librdkafka setting name after {KAFKA_PASSTHROUGH_PREFIX} "
                "(e.g. INFERSTREAM_KAFKA_X_SOCKET_KEEPALIVE_ENABLE=true)"
            )
        if key in _NAMED_KAFKA_KEYS:
            raise SettingsError(f"invalid {name}: set {_NAMED_KAFKA_KEYS[key]} instead")
        out.append((key, env[name]))
    return tuple(out)


def is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_KEY_WORDS)


def redact_value(key: str, value: object) -> object:
    """`value`, or `***` when `key` names a secret (librdkafka keys, setting names)."""
    return "***" if is_secret_key(key) and value not in ("", None) else value


def redact_url(url: str) -> str:
    """A URL with the password of its user part replaced by `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}{slash}{path}"


def read_secret(path: str, what: str) -> str:
    """The first line of a secret file; SettingsError naming the file, never its content."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise SettingsError(f"cannot read {what} {path}: {reason}") from None
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise SettingsError(f"{what} {path} is empty")
    return secret


def _security_problem(s: Settings) -> str | None:
    """What is wrong with the security settings taken together (files exist, pairs complete)."""
    sasl = s.kafka_security_protocol.startswith("SASL_")
    tls = s.kafka_security_protocol in ("SSL", "SASL_SSL")
    if sasl and not s.kafka_sasl_username:
        return (
            f"INFERSTREAM_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs "
            "INFERSTREAM_KAFKA_SASL_USERNAME"
        )
    if sasl and not (s.kafka_sasl_password_file or s.kafka_sasl_password):
        return (
            f"INFERSTREAM_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs "
            "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE (or INFERSTREAM_KAFKA_SASL_PASSWORD)"
        )
    if s.kafka_sasl_password_file and s.kafka_sasl_password:
        return "set one of INFERSTREAM_KAFKA_SASL_PASSWORD_FILE and INFERSTREAM_KAFKA_SASL_PASSWORD"
    if s.redis_password_file and s.redis_password:
        return "set one of INFERSTREAM_REDIS_PASSWORD_FILE and INFERSTREAM_REDIS_PASSWORD"
    tls_files = {
        "INFERSTREAM_KAFKA_SSL_CA_LOCATION": s.kafka_ssl_ca_location,
        "INFERSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION": s.kafka_ssl_certificate_location,
        "INFERSTREAM_KAFKA_SSL_KEY_LOCATION": s.kafka_ssl_key_location,
        "INFERSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE": s.kafka_ssl_key_password_file,
    }
    for name, path in tls_files.items():
        if path and not tls:
            return (
                f"{name} is set, but INFERSTREAM_KAFKA_SECURITY_PROTOCOL="
                f"{s.kafka_security_protocol} does not use TLS (use SSL or SASL_SSL)"
            )
    if bool(s.kafka_ssl_certificate_location) != bool(s.kafka_ssl_key_location):
        return (
            "set both INFERSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION and "
            "INFERSTREAM_KAFKA_SSL_KEY_LOCATION (a client certificate and its key), or neither"
        )
    if s.redis_tls_ca and not s.redis_url.startswith("rediss://"):
        return (
            "INFERSTREAM_REDIS_TLS_CA is set, but INFERSTREAM_REDIS_URL is not rediss:// "
            "(TLS); use rediss://host:port/db"
        )
    files = {
        **tls_files,
        "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE": s.kafka_sasl_password_file,
        "INFERSTREAM_REDIS_PASSWORD_FILE": s.redis_password_file,
        "INFERSTREAM_REDIS_TLS_CA": s.redis_tls_ca,
    }
    for name, path in files.items():
        if path and not os.access(Path(path).expanduser(), os.R_OK):
            why = "not readable" if Path(path).expanduser().exists() else "no such file"
            return f"invalid {name}={path!r}: {why}"
    return None


# -- end of security ----------------------------------------------------------------------------
