"""`python -m bench`: a bad flag value or INFERSTREAM_* setting is one line on stderr and exit
code 2, before anything starts; the product's `inferstream` command does not import bench/."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import bench.cli
from bench.cli import main
from pipeline.config import REPO_ROOT


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records what would have run (nothing really runs); no INFERSTREAM_* variable is set."""
    calls: list[object] = []
    monkeypatch.setattr(bench.cli, "execute", lambda args: calls.append(args) or 0)
    for name in list(os.environ):
        if name.startswith("INFERSTREAM_"):
            monkeypatch.delenv(name)
    return calls


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--events", "0"], "argument --events: expected an integer >= 1"),
        (["--events", "many"], "argument --events: expected an integer >= 1"),
        (["--rate-seconds", "-1"], "argument --rate-seconds: expected a number > 0"),
        (["--rate-seconds", "inf"], "argument --rate-seconds: expected a number > 0"),
        (["--loads", "0.5,x"], "argument --loads: expected a comma list of numbers > 0"),
        (["--loads", ","], "argument --loads: expected a comma list of numbers > 0"),
        (["--slos", "0"], "argument --slos: expected a comma list of numbers > 0"),
        (["--batch-sizes", "64,0"], "argument --batch-sizes: expected a comma list of integers"),
        (["--processes", "2,x"], "argument --processes: expected a comma list of integers >= 1"),
        (["--slo", "0"], "argument --slo: expected a number > 0"),
        (["--batch-max", "0"], "argument --batch-max: expected an integer >= 1"),
        (["--window", "-1"], "argument --window: expected a number >= 0"),
        (["--window", "nan"], "argument --window: expected a number >= 0"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flag_exits_2_in_one_line(
    argv: list[str], fragment: str, executed: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    line = one_line(capsys)
    assert line.startswith("python -m bench: error: ")
    assert fragment in line, line
    assert executed == []


def test_good_flags_reach_the_run(executed: list[object]) -> None:
    argv = ["--events", "10", "--loads", "0.5, 0.9", "--batch-sizes", "64", "--window", "0"]
    assert main(argv) == 0
    (args,) = executed
    assert (args.events, args.loads, args.batch_sizes, args.window) == (10, "0.5, 0.9", "64", 0.0)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("INFERSTREAM_BATCH_MAX", "0", "invalid INFERSTREAM_BATCH_MAX='0': expected an integer"),
        ("INFERSTREAM_LATENCY_SLO_MS", "soon", "invalid INFERSTREAM_LATENCY_SLO_MS='soon'"),
        ("INFERSTREAM_BATCH_MAXX", "8", "unknown environment variable INFERSTREAM_BATCH_MAXX"),
    ],
)
def test_bad_setting_exits_2_in_one_line(
    variable: str,
    value: str,
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("INFERSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(variable, value)
    assert main(["--smoke"]) == 2  # the settings are checked before anything runs
    line = one_line(capsys)
    assert line.startswith("python -m bench: error: ")
    assert fragment in line, line


def _python_m_bench(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--events", "0"], {}, "argument --events: expected an integer >= 1"),
        (["--smoke"], {"INFERSTREAM_BATCH_MAX": "0"}, "invalid INFERSTREAM_BATCH_MAX='0'"),
    ],
)
def test_python_m_bench_errors_are_one_line_without_traceback(
    argv: list[str], env: dict[str, str], fragment: str
) -> None:
    run = _python_m_bench(*argv, **env)
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("python -m bench: error: ") and fragment in lines[0], lines[0]


def test_the_product_cli_does_not_import_bench() -> None:
    code = (
        "import sys\n"
        "from pipeline.cli import build_parser\n"
        "parser = build_parser()\n"
        "loaded = sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.'))\n"
        "assert not loaded, loaded\n"
        "assert 'bench' not in parser._subparsers._group_actions[0].choices\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
