"""Prometheus file_sd targets: one JSON file per serving process in one directory.

Each worker process (every `--processes N` child too) writes `<dir>/<pid>.json` with its
`/metrics` address once it serves, and removes it when it stops; files of processes that are
gone (killed) are removed by the next process that starts. A Prometheus job with
`file_sd_configs: [{files: ["<dir>/*.json"]}]` then scrapes every process of the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def targets_dir(state_dir: Path) -> Path:
    return state_dir / "prometheus" / "targets"


def write_target(directory: Path, address: str, labels: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    prune(directory)
    path = directory / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]))
    tmp.replace(path)  # Prometheus never reads half a file
    return path


def remove_target(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def prune(directory: Path) -> None:
    """Remove the files of processes that no longer run."""
    for path in directory.glob("*.json"):
        try:
            pid = int(path.stem)
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            remove_target(path)
        except PermissionError:
            pass  # alive, someone else's


def read_targets(directory: Path) -> list[str]:
    """Every address listed under `directory` (for `inferstream top`)."""
    out: list[str] = []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            for group in json.loads(path.read_text()):
                out.extend(group.get("targets", []))
    return out
