"""Settings: every INFERSTREAM_* variable parsed and range-checked, one error class, one line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from pipeline.config import (
    OTHER_VARIABLES,
    REPO_ROOT,
    Settings,
    _choices,
    _expected,
    _types,
    env_fields,
    variable,
)
from pipeline.errors import InferstreamError, SettingsError

try:
    import onnxruntime  # noqa: F401

    HAVE_ORT = True
except ImportError:
    HAVE_ORT = False

# (variable suffix, bad value, what the message must say is valid)
BAD = [
    ("TOPIC_PARTITIONS", "abc", "an integer >= 1"),
    ("TOPIC_PARTITIONS", "0", "an integer >= 1"),
    ("TOPIC_REPLICATION", "0", "an integer >= 1"),
    ("BATCH_MAX", "0", "an integer >= 1"),
    ("BATCH_MAX", "1.5", "an integer >= 1"),
    ("LATENCY_SLO_MS", "0", "a number > 0"),
    ("LATENCY_SLO_MS", "-3", "a number > 0"),
    ("LATENCY_SLO_MS", "nan", "a number > 0"),
    ("LATENCY_SLO_MS", "fast", "a number > 0"),
    ("COMMIT_INTERVAL_S", "-0.1", "a number >= 0"),
    ("ENGINE_STALL_S", "0", "a number > 0"),
    ("PUBLISH_TIMEOUT_S", "0", "a number > 0"),
    ("MODEL_TIMEOUT_S", "-1", "a number > 0"),
    ("MODEL_TIMEOUT_S", "inf", "a number > 0"),
    ("MODEL_RETRIES", "-1", "an integer >= 0"),
    ("INFERENCE_THREADS", "0", "an integer >= 1"),
    ("CONSUMER_PREFETCH_KBYTES", "0", "an integer in [1, 2097151]"),
    ("CONSUMER_SESSION_TIMEOUT_MS", "5999", "an integer in [6000, 300000]"),
    ("CONSUMER_SESSION_TIMEOUT_MS", "300001", "an integer in [6000, 300000]"),
    ("PRODUCER_LINGER_MS", "-1", "a number in [0, 900000]"),
    ("OUTPUT_COMPRESSION", "brotli", "one of none, gzip, snappy, lz4, zstd"),
    ("LOG_LEVEL", "bogus", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
]


def error_of(env: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    return info.value


@pytest.mark.parametrize(("suffix", "value", "valid"), BAD)
def test_bad_value_is_one_line_naming_variable_value_and_range(
    suffix: str, value: str, valid: str
) -> None:
    exc = error_of({f"INFERSTREAM_{suffix}": value})
    message = str(exc)
    assert message.startswith(f"invalid INFERSTREAM_{suffix}={value!r}: expected {valid}")
    assert "\n" not in message
    assert exc.exit_code == 2


def test_settings_error_is_the_project_root_error_and_a_value_error() -> None:
    exc = error_of({"INFERSTREAM_BATCH_MAX": "0"})
    assert isinstance(exc, InferstreamError)
    assert isinstance(exc, ValueError)  # callers that caught the old ValueError still do
    assert InferstreamError("x").exit_code == 1


@pytest.mark.parametrize(
    ("suffix", "value", "field", "parsed"),
    [
        ("CONSUMER_SESSION_TIMEOUT_MS", "6000", "consumer_session_timeout_ms", 6000),
        ("CONSUMER_SESSION_TIMEOUT_MS", "300000", "consumer_session_timeout_ms", 300000),
        ("COMMIT_INTERVAL_S", "0", "commit_interval_s", 0.0),
        ("MODEL_RETRIES", "0", "model_retries", 0),
        ("PRODUCER_LINGER_MS", "0", "producer_linger_ms", 0.0),
        ("TOPIC_PARTITIONS", " 12 ", "topic_partitions", 12),
        ("LATENCY_SLO_MS", "7.5", "latency_slo_ms", 7.5),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("LOG_LEVEL", "Error", "log_level", "ERROR"),
        ("OUTPUT_COMPRESSION", "ZSTD", "output_compression", "zstd"),
        ("GROUP_INSTANCE_ID", "worker-a", "group_instance_id", "worker-a"),
    ],
)
def test_good_values_parse(suffix: str, value: str, field: str, parsed: object) -> None:
    assert getattr(Settings.from_env({f"INFERSTREAM_{suffix}": value}), field) == parsed


def test_paths_expand_the_home_directory() -> None:
    cfg = Settings.from_env({"INFERSTREAM_STATE_DIR": "~/somewhere"})
    assert cfg.state_dir == Path.home() / "somewhere"


def test_defaults_are_valid() -> None:
    assert Settings.from_env({}) == Settings()


def test_unknown_variable_names_the_closest_valid_one() -> None:
    message = str(error_of({"INFERSTREAM_BATCH_MX": "10"}))
    assert message == (
        "unknown environment variable INFERSTREAM_BATCH_MX; did you mean INFERSTREAM_BATCH_MAX?"
    )
    message = str(error_of({"INFERSTREAM_LOGLEVEL": "info"}))
    assert message.endswith("did you mean INFERSTREAM_LOG_LEVEL?")


def test_unknown_variable_without_a_close_one_lists_the_valid_names() -> None:
    message = str(error_of({"INFERSTREAM_ZZZ": "1"}))
    assert message.startswith("unknown environment variable INFERSTREAM_ZZZ; known: ")
    assert "INFERSTREAM_BATCH_MAX" in message


def test_other_tools_variables_and_foreign_ones_are_not_settings() -> None:
    env = dict.fromkeys(OTHER_VARIABLES, "x") | {"PATH": "/bin", "XINFERSTREAM_FOO": "1"}
    assert Settings.from_env(env) == Settings()


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime not installed")
def test_execution_providers_must_be_onnx_runtime_names() -> None:
    message = str(error_of({"INFERSTREAM_EXECUTION_PROVIDERS": "CPUExecutionProvider,CUDAProv"}))
    assert message.startswith(
        "invalid INFERSTREAM_EXECUTION_PROVIDERS='CPUExecutionProvider,CUDAProv': "
        "unknown execution provider 'CUDAProv'"
    )
    assert "CPUExecutionProvider" in message.split("providers: ")[1]
    cfg = Settings.from_env({"INFERSTREAM_EXECUTION_PROVIDERS": "CPUExecutionProvider"})
    assert cfg.execution_providers == ("CPUExecutionProvider",)
    both = " CUDAExecutionProvider, CPUExecutionProvider"
    two = Settings.from_env({"INFERSTREAM_EXECUTION_PROVIDERS": both})
    assert two.execution_providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_constructor_checks_ranges_and_normalizes_choices() -> None:
    with pytest.raises(SettingsError, match=r"INFERSTREAM_BATCH_MAX=0: expected an integer >= 1"):
        Settings(batch_max=0)
    with pytest.raises(SettingsError, match="INFERSTREAM_LOG_LEVEL"):
        Settings(log_level="loud")  # type: ignore[arg-type]
    assert Settings(log_level="info").log_level == "INFO"  # type: ignore[arg-type]
    assert Settings(latency_slo_ms=5).latency_slo_ms == 5.0


def test_every_setting_has_a_type_default_and_one_line_doc() -> None:
    for f in env_fields():
        doc = f.metadata["doc"]
        assert doc and "\n" not in doc, f.name
        assert _types()[f.name] in (str, int, float, Path, tuple[str, ...]) or _choices(f), f.name


# README.md, "## Configuration": the table lists exactly the settings with their defaults.


def readme_rows() -> list[list[str]]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `INFERSTREAM_")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def shown_default(value: object) -> str:
    if isinstance(value, Path):
        if value.is_relative_to(REPO_ROOT):
            return f"{value.relative_to(REPO_ROOT)}/"
        return f"~/{value.relative_to(Path.home())}"
    return "" if value == "" else str(value)


def test_readme_table_lists_every_setting_in_order() -> None:
    listed = [row[0] for row in readme_rows()]
    assert all(re.fullmatch(r"`\w+`", name) for name in listed)
    listed = [name.strip("`") for name in listed]
    assert listed == [variable(f) for f in env_fields()]


def test_readme_table_defaults_and_valid_ranges_match() -> None:
    by_name = {variable(f): f for f in env_fields()}
    for name, default, valid, _meaning in (row[:4] for row in readme_rows()):
        f = by_name[name.strip("`")]
        expected = shown_default(f.default)
        if default == "(empty)":
            assert f.default in ("", ()), name
        elif isinstance(f.default, float):
            assert math.isclose(float(default.strip("`")), f.default), name
        else:
            assert default.strip("`") == expected, name
        if _types()[f.name] in (int, float) or _choices(f):
            assert valid == _expected(f).removeprefix("expected "), name
