"""Installing a Debian package when a tool is missing: as root, through passwordless sudo, or
not at all (the caller then says how to install it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

Log = Callable[[str], None]


def apt_prefix() -> list[str] | None:
    """How to run apt-get here: directly as root, through passwordless sudo, or not at all."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n"]
    return None


def apt_install(prefix: list[str], package: str, log: Log) -> subprocess.CompletedProcess[str]:
    """`apt-get install package`, with one `apt-get update` and retry when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    log(f"{package} is missing; installing it with apt-get...")
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        log("apt-get install failed; running apt-get update and trying again...")
        subprocess.run([*prefix, "apt-get", "update", "-q"], capture_output=True, env=env)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    return result
