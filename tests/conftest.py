"""Suite-wide fixtures: the `stack` (real Kafka + Redis) that integration tests run against.

INFERSTREAM_STATE_DIR, when set, holds everything the suite writes: the stack's data, pid
files and logs (<state>/stack), the workers' state and every temporary file, pytest's
`tmp_path` included (<state>/tests/tmp; TMPDIR is set for the subprocesses too). Unset, the
stack keeps its data in ~/.local/state/inferstream and temporary files go to the system's
temporary directory, as usual.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.config import Settings
from pipeline.stack import StackInfo

INTEGRATION_DIR = Path(__file__).parent / "integration"
STACK_ENV = ("INFERSTREAM_KAFKA_BOOTSTRAP", "INFERSTREAM_REDIS_URL")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-stack",
        action="store_true",
        help="leave the Kafka/Redis the session started running afterwards (faster reruns)",
    )
    parser.addoption(
        "--keep-topics",
        action="store_true",
        help="leave the topics and consumer groups the tests created on the broker (to inspect "
        "them); by default they are deleted at the end of the session",
    )


def suite_state_dir() -> Path | None:
    """INFERSTREAM_STATE_DIR as the suite was started with, or None when it is not set."""
    raw = os.environ.get("INFERSTREAM_STATE_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """With INFERSTREAM_STATE_DIR set, temporary files go under it too: pytest's `tmp_path`
    (its base directory comes from `tempfile.gettempdir()`, unless --basetemp or
    PYTEST_DEBUG_TEMPROOT say otherwise), `tempfile` in this process and, through TMPDIR, in
    the workers and commands the tests start."""
    state = suite_state_dir()
    if state is None:
        return
    tmp = state / "tests" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration is an `integration` test (`-m "not integration"`)."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _log(message: str) -> None:
    print(f"[stack] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[StackInfo]:
    """The local stack, up for the whole session (`pipeline.stack.StackInfo`).

    Servers that already answer are reused and left running; what this session starts is
    stopped at the end, unless another test session still uses it or --keep-stack is given.
    INFERSTREAM_KAFKA_BOOTSTRAP / INFERSTREAM_REDIS_URL are set in os.environ so that
    subprocesses find the same servers."""
    keep = bool(request.config.getoption("--keep-stack"))
    try:
        with contextlib.ExitStack() as cleanup:
            info = cleanup.enter_context(
                local_stack.session(Settings.from_env(), log=_log, keep=keep)
            )
            saved = {key: os.environ.get(key) for key in STACK_ENV}
            cleanup.callback(_restore_env, saved)
            os.environ["INFERSTREAM_KAFKA_BOOTSTRAP"] = info.bootstrap
            os.environ["INFERSTREAM_REDIS_URL"] = info.redis_url
            yield info
    except local_stack.StackError as exc:
        pytest.fail(f"the local Kafka/Redis stack did not come up: {exc}", pytrace=False)


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
