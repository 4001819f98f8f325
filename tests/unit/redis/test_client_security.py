"""Redis security settings: the password from a file or the environment, rediss:// checked
against the configured CA, nothing secret in what the client shows or logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import SettingsError
from pipeline.redis.client import DegradingRedis, connection_options

PASSWORD = "r3dis-Pa55"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis.password"
    path.write_text(PASSWORD + "\n")
    return path


def _kwargs(redis: DegradingRedis) -> dict:
    return redis.client.connection_pool.connection_kwargs


def test_no_security_settings_no_options() -> None:
    assert connection_options(Settings()) == {}


def test_the_password_comes_from_its_file_or_the_environment(password_file: Path) -> None:
    assert connection_options(Settings(redis_password_file=str(password_file))) == {
        "password": PASSWORD
    }
    assert connection_options(Settings(redis_password=PASSWORD)) == {"password": PASSWORD}


def test_rediss_verifies_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    options = connection_options(Settings(redis_url="rediss://h:6380/0", redis_tls_ca=str(ca)))
    assert options == {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(ca),
    }
    client = DegradingRedis(Settings(redis_url="rediss://h:6380/0", redis_tls_ca=str(ca)))
    assert _kwargs(client)["ssl_ca_certs"] == str(ca)
    assert client.client.connection_pool.connection_class.__name__ == "SSLConnection"


def test_a_tls_ca_with_a_plain_url_is_refused_at_once(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(SettingsError, match="not rediss://"):
        Settings.from_env({"INFERSTREAM_REDIS_TLS_CA": str(ca)})
    with pytest.raises(SettingsError, match="INFERSTREAM_REDIS_PASSWORD_FILE='/nope': no such"):
        Settings.from_env({"INFERSTREAM_REDIS_PASSWORD_FILE": "/nope"})


def test_a_bare_url_gets_the_process_password(
    password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERSTREAM_REDIS_PASSWORD_FILE", str(password_file))
    client = DegradingRedis("redis://127.0.0.1:1/0", timeout_s=0.05)
    assert _kwargs(client)["password"] == PASSWORD


def test_failures_are_logged_without_the_password(
    password_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        redis_url=f"redis://user:{PASSWORD}@127.0.0.1:1/0", redis_password_file=str(password_file)
    )
    client = DegradingRedis(settings, timeout_s=0.05)
    with caplog.at_level(logging.DEBUG):
        assert client.call(lambda r: r.ping()) is None
    assert client.degraded and caplog.records
    assert PASSWORD not in caplog.text
    assert PASSWORD not in client.url and PASSWORD not in repr(settings)
