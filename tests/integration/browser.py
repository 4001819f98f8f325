"""Debian's chromium, headless: installed by the suite when missing (as root or with sudo)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.stack.apt import apt_install, apt_prefix

_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    found = next((shutil.which(n) for n in _NAMES if shutil.which(n)), None)
    if found:
        return found
    prefix = apt_prefix()
    if prefix is None:  # the suite starts its real parts itself; without them it fails
        pytest.fail(
            "chromium is missing and cannot be installed here (apt-get needs root or "
            "passwordless sudo): install Debian's `chromium` package"
        )
    done = apt_install(prefix, "chromium", lambda line: print(f"[browser] {line}", file=sys.stderr))
    found = next((shutil.which(n) for n in _NAMES if shutil.which(n)), None)
    assert done.returncode == 0 and found, (done.stdout + done.stderr)[-2000:]
    return found


def _run(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         *flags, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def dump_dom(page: Path) -> str:
    """The page's DOM after the browser loaded and laid it out."""
    done = _run(page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, out: Path, size: str = "1200,2400") -> Path:
    done = _run(page, f"--screenshot={out}", f"--window-size={size}", "--hide-scrollbars")
    assert out.is_file(), done.stderr[-2000:]
    return out
