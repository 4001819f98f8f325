"""`inferstream demo` end to end, short: what `make demo` runs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_scores_everything_it_produces_and_reports_latency(env, settings):
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--seconds", "8", "--rate", "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout[done.stdout.index("demo summary") :]
    counts = re.search(r"produced ([\d,]+), scored ([\d,]+), dead letters ([\d,]+)", summary)
    produced, scored, dead = (int(g.replace(",", "")) for g in counts.groups())
    assert produced >= 3000 and scored == produced and dead == 0
    assert re.search(r"p99 [\d.]+ ms", summary)
