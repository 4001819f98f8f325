"""Settings from INFERSTREAM_* environment variables, with defaults for the local stack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent

Guarantee = Literal["at-least-once"]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"INFERSTREAM_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Every knob a deployment may set; `INFERSTREAM_<NAME>` overrides `name`."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    schema_registry_url: str = ""
    schemas_dir: Path = REPO_ROOT / "schemas"
    models_dir: Path = REPO_ROOT / "models"
    state_dir: Path = Path.home() / ".local" / "state" / "inferstream"
    cache_dir: Path = Path.home() / ".cache" / "inferstream"
    app_id: str = "inferstream"  # consumer group of the scoring engine (drift: <app_id>-drift)
    topic_namespace: str = ""  # prefix of every topic name, e.g. "staging."
    topic_partitions: int = 4
    topic_replication: int = 1
    # the engine (pipeline/engine): micro-batches, commits, backpressure
    batch_max: int = 256  # largest micro-batch
    latency_slo_ms: float = 25.0  # event-age objective (record timestamp to delivery)
    commit_interval_s: float = 0.5  # delivered offsets are committed this often
    engine_stall_s: float = 1.0  # a handler that takes no batch this long: partitions paused
    consumer_prefetch_kbytes: int = 8192  # librdkafka's prefetch bound per engine
    # a worker silent this long (killed, frozen) loses its partitions to the rest of the group
    consumer_session_timeout_ms: int = 45000
    # static group membership: a restarted worker with the same id gets its partitions back
    # at once instead of after the session timeout (--processes N appends -<index>)
    group_instance_id: str = ""
    producer_linger_ms: float = 1.0
    output_compression: str = "none"  # compression.type of results/provenance/dead letters
    publish_timeout_s: float = 60.0  # a batch's outputs not delivered by then: the worker exits
    model_timeout_s: float = 5.0
    model_retries: int = 2
    inference_threads: int = 1
    execution_providers: str = (
        ""  # comma list overriding auto-detection, e.g. "CPUExecutionProvider"
    )
    log_level: str = "WARNING"
    guarantee: Guarantee = "at-least-once"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ("extra", "guarantee"):
                continue
            raw = os.environ.get(f"INFERSTREAM_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls, f.name, None)
            try:
                if isinstance(default, bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                elif isinstance(default, Path):
                    values[f.name] = Path(raw).expanduser()
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ValueError(f"INFERSTREAM_{f.name.upper()}={raw!r}: {exc}") from None
        return cls(**values)  # type: ignore[arg-type]


def settings() -> Settings:
    return Settings.from_env()
