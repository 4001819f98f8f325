"""docker-compose.yml is valid for the Compose that is installed (skipped without one)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.integration


def _compose_command() -> list[str] | None:
    """`docker compose` (plugin) or a standalone `docker-compose`, if either is installed."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_file_is_valid() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither the `docker compose` plugin nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_inferstream_command_in_the_compose_file_is_a_valid_command() -> None:
    """Runs without Docker: each service's `inferstream ...` command parses with our CLI."""
    import yaml

    from pipeline.cli import build_parser

    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    commands = {
        name: service["command"]
        for name, service in services.items()
        if isinstance(service.get("command"), list) and service["command"][0] == "inferstream"
    }
    assert {"topics", "worker", "drift-worker"} <= set(commands)
    parser = build_parser()
    for name, command in commands.items():
        args = parser.parse_args(command[1:])
        assert callable(getattr(args, "func", None)), f"{name}: {command} runs nothing"
