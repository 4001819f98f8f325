"""The secured stack formats Kafka's storage without a SCRAM password on any command line:
StorageTool's arguments go in a Java argument file (mode 0600) that is gone afterwards.
(tests/integration/test_secure_stack.py starts the real one.)"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stack import secure


def test_scram_passwords_stay_off_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = secure._layout(Settings(state_dir=tmp_path), 29092, 29379)
    calls: list[dict[str, Any]] = []

    def run(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        args_file = Path(next(a for a in argv if a.startswith("@"))[1:])
        calls.append({
            "argv": argv,
            "text": args_file.read_text(),
            "mode": stat.S_IMODE(args_file.stat().st_mode),
        })  # fmt: skip
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(secure, "find_java", lambda: "/usr/bin/java")
    monkeypatch.setattr(secure, "ensure_jars", lambda _s, _log: tmp_path / "libs")
    monkeypatch.setattr(secure, "ensure_certificates", lambda _stack, _password: None)
    monkeypatch.setattr(secure, "spawn", lambda argv, **_kw: 4242)
    monkeypatch.setattr(secure.subprocess, "run", run)

    assert secure._launch_kafka(stack, Settings(state_dir=tmp_path), lambda _line: None) == 4242

    broker = (stack.dir / "kafka-broker.password").read_text().strip()
    client = stack.kafka_password_file.read_text().strip()
    (call,) = calls
    assert not any(broker in a or client in a for a in call["argv"]), call["argv"]
    assert call["argv"][-1] == f"@{stack.dir / 'kafka-format.args'}"
    assert call["mode"] == 0o600
    assert f"password={broker}]" in call["text"] and f"password={client}]" in call["text"]
    assert '"kafka.tools.StorageTool"\n"format"\n' in call["text"]
    assert not (stack.dir / "kafka-format.args").exists(), "the argument file is removed"


def test_the_controller_listener_requires_a_client_certificate(tmp_path: Path) -> None:
    stack = secure._layout(Settings(state_dir=tmp_path), 29092, 29379)
    props = dict(
        line.split("=", 1)
        for line in secure._kafka_properties(stack, "b", "s").splitlines()
        if line and not line.startswith("#")
    )
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert protocols == {"CONTROLLER": "SSL", "SASL_SSL": "SASL_SSL"}  # no PLAINTEXT listener
    assert props["listener.name.controller.ssl.client.auth"] == "required"
