"""`inferstream stack up --secure`: a second local Kafka and Redis, authenticated and encrypted.

    stack = up(settings)          # CA + server certificate, Kafka SASL_SSL + SCRAM, Redis TLS
    stack.client_env()            # the INFERSTREAM_* variables a client needs for them
    down(settings); status(settings)

Everything lives in `<state dir>/stack/secure/` (its own ports, data, pid files and logs), so
it runs beside the plaintext stack. The certificates come from `openssl` (a CA valid 30 days
and a server certificate for 127.0.0.1 / localhost signed by it); `keytool` (Java's) builds
the broker's truststore. Kafka has one SASL_SSL listener (SCRAM-SHA-512, also between the
broker and itself) and a loopback controller listener on mutual TLS (a certificate of the
stack's CA required); the SCRAM users are written
into the metadata when the storage is formatted (`kafka-storage format --add-scram`, its
arguments in a Java argument file so that no password is on a command line). Redis
listens on TLS only (`port 0`), with `requirepass`. Passwords are random, kept in files of
mode 0600 next to the certificates, and never printed: only their file names are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.stack.kafka import ensure_jars, find_java, new_cluster_id
from pipeline.stack.process import (
    StackError,
    file_lock,
    live_pid,
    log_tail,
    pid_alive,
    port_open,
    spawn,
    stop,
)
from pipeline.stack.redis import ensure_redis_server

Log = Callable[[str], None]

KAFKA_PORT = 19094  # controller: +1
REDIS_PORT = 16380
CLIENT_USER = "inferstream"
BROKER_USER = "inferstream-broker"  # the broker's own SCRAM user (inter-broker listener)
MECHANISM = "SCRAM-SHA-512"
CERT_DAYS = 30
READY_TIMEOUT_S = 90.0


def secure_dir(settings: Settings) -> Path:
    return settings.state_dir / "stack" / "secure"


@dataclass(frozen=True)
class SecureStack:
    """Where the secured stack's files are and which ports it uses (no secret values)."""

    dir: Path
    kafka_port: int = KAFKA_PORT
    redis_port: int = REDIS_PORT

    @property
    def tls(self) -> Path:
        return self.dir / "tls"

    @property
    def ca(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def kafka_password_file(self) -> Path:
        return self.dir / "kafka-client.password"

    @property
    def redis_password_file(self) -> Path:
        return self.dir / "redis.password"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"rediss://127.0.0.1:{self.redis_port}/0"

    def client_env(self) -> dict[str, str]:
        """The settings of a client of this stack, as INFERSTREAM_* variables."""
        return {
            "INFERSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "INFERSTREAM_KAFKA_SASL_MECHANISM": MECHANISM,
            "INFERSTREAM_KAFKA_SASL_USERNAME": CLIENT_USER,
            "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE": str(self.kafka_password_file),
            "INFERSTREAM_KAFKA_SSL_CA_LOCATION": str(self.ca),
            "INFERSTREAM_REDIS_URL": self.redis_url,
            "INFERSTREAM_REDIS_PASSWORD_FILE": str(self.redis_password_file),
            "INFERSTREAM_REDIS_TLS_CA": str(self.ca),
        }

    def client_settings(self, base: Settings) -> Settings:
        """`base` pointed at this stack."""
        return dataclasses.replace(
            base,
            kafka_bootstrap=self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=MECHANISM,
            kafka_sasl_username=CLIENT_USER,
            kafka_sasl_password_file=str(self.kafka_password_file),
            kafka_sasl_password="",
            kafka_ssl_ca_location=str(self.ca),
            redis_url=self.redis_url,
            redis_password_file=str(self.redis_password_file),
            redis_password="",
            redis_tls_ca=str(self.ca),
        )


def _layout(settings: Settings, kafka_port: int | None, redis_port: int | None) -> SecureStack:
    """The stack's ports: as asked, else as recorded by the last `up`, else the defaults."""
    root = secure_dir(settings)
    recorded: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads((root / "ports.json").read_text())
    return SecureStack(
        root,
        kafka_port or recorded.get("kafka", KAFKA_PORT),
        redis_port or recorded.get("redis", REDIS_PORT),
    )


# ---------------------------------------------------------------- certificates and secrets


def _run(argv: list[str], what: str, cwd: Path) -> None:
    try:
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise StackError(f"{what}: `{argv[0]}` is not installed") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise StackError(f"{what} failed ({argv[0]} exit {result.returncode}):\n{tail}")


def _secret_file(path: Path) -> str:
    """The secret in `path`, created (random, mode 0600) if missing."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def _private(path: Path, text: str) -> None:
    """Write a file only we may read (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def make_ca(tls: Path, name: str = "inferstream local CA") -> tuple[Path, Path]:
    """A self-signed CA in `tls` (ca.pem, ca.key); returns their paths."""
    tls.mkdir(parents=True, exist_ok=True)
    ca, key = tls / "ca.pem", tls / "ca.key"
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(key), "-out", str(ca), "-days", str(CERT_DAYS), "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        "creating the CA", tls,
    )  # fmt: skip
    key.chmod(0o600)
    return ca, key


def ensure_certificates(stack: SecureStack, store_password: str) -> None:
    """CA, server certificate (127.0.0.1, localhost) and the broker's PKCS12 stores."""
    tls = stack.tls
    if (tls / ".complete").exists():
        return
    shutil.rmtree(tls, ignore_errors=True)
    ca, ca_key = make_ca(tls)
    (tls / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"
    )
    steps = [
        (["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", "server.key",
          "-out", "server.csr", "-subj", "/CN=localhost"], "the server key"),
        (["openssl", "x509", "-req", "-in", "server.csr", "-CA", str(ca), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", "server.pem", "-days", str(CERT_DAYS), "-sha256",
          "-extfile", "server.ext"], "signing the server certificate"),
        # the password reaches openssl and keytool through the environment, not argv (ps)
        (["openssl", "pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key",
          "-certfile", str(ca), "-name", "broker", "-out", "broker.p12",
          "-passout", "env:INFERSTREAM_STORE_PASSWORD"], "the broker keystore"),
    ]  # fmt: skip
    os.environ["INFERSTREAM_STORE_PASSWORD"] = store_password
    try:
        for argv, what in steps:
            _run(argv, f"creating {what}", tls)
        _run(
            ["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca),
             "-keystore", "trust.p12", "-storetype", "PKCS12",
             "-storepass:env", "INFERSTREAM_STORE_PASSWORD"],
            "creating the broker truststore (keytool)", tls,
        )  # fmt: skip
    finally:
        del os.environ["INFERSTREAM_STORE_PASSWORD"]
    for private in ("server.key", "broker.p12", "trust.p12"):
        (tls / private).chmod(0o600)
    (tls / ".complete").write_text("ok\n")


# ---------------------------------------------------------------- Kafka


def _kafka_properties(stack: SecureStack, broker_password: str, store_password: str) -> str:
    host, port, cport = "127.0.0.1", stack.kafka_port, stack.kafka_port + 1
    tls = stack.tls
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}";'
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{cport}",
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_SSL",
        # the controller quorum is this one process, on loopback; its listener is TLS with a
        # client certificate required (the broker's own, signed by the stack's CA), so no
        # other local process can reach the metadata quorum
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "listener.name.controller.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls / "broker.p12"),
        "ssl.keystore.password": store_password,
        "ssl.key.password": store_password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(tls / "trust.p12"),
        "ssl.truststore.password": store_password,
        "ssl.client.auth": "none",
        "log.dirs": str(stack.dir / "kafka-data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    lines = ["# generated by `inferstream stack up --secure`; holds passwords (mode 0600)"]
    return "\n".join([*lines, *(f"{k}={v}" for k, v in props.items())]) + "\n"


def _launch_kafka(stack: SecureStack, settings: Settings, log: Log) -> int:
    java = find_java()
    classpath = f"{ensure_jars(settings, log)}/*"
    broker_password = _secret_file(stack.dir / "kafka-broker.password")
    client_password = _secret_file(stack.kafka_password_file)
    store_password = _secret_file(stack.dir / "store.password")
    ensure_certificates(stack, store_password)
    properties = stack.dir / "kafka.properties"
    _private(properties, _kafka_properties(stack, broker_password, store_password))
    data = stack.dir / "kafka-data"
    if not (data / "meta.properties").exists():
        shutil.rmtree(data, ignore_errors=True)
        # SCRAM users go into the bootstrap metadata. StorageTool takes their passwords only
        # as arguments, which any local user sees in `ps`/proc: the main class and its
        # arguments go in a Java argument file instead (`java @file`, mode 0600, removed once
        # the tool ran), so the command line holds only the file's name
        tool_args = [
            "kafka.tools.StorageTool", "format", "--standalone",
            "-t", new_cluster_id(), "-c", str(properties),
            "--add-scram", f"{MECHANISM}=[name={BROKER_USER},password={broker_password}]",
            "--add-scram", f"{MECHANISM}=[name={CLIENT_USER},password={client_password}]",
        ]  # fmt: skip
        args_file = stack.dir / "kafka-format.args"
        _private(args_file, "".join(f'"{arg}"\n' for arg in tool_args))
        argv = [java, "-cp", classpath, f"@{args_file}"]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=180, check=False
            )
        finally:
            args_file.unlink(missing_ok=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            for secret in (broker_password, client_password):
                tail = tail.replace(secret, "***")
            raise StackError(f"formatting the secured Kafka's storage failed:\n{tail}")
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx1g").split()
    argv = [
        java, *heap, "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        "-cp", classpath, "kafka.Kafka", str(properties),
    ]  # fmt: skip
    return spawn(argv, log_path=stack.dir / "kafka.log", pid_path=stack.dir / "kafka.pid")


def kafka_answers(stack: SecureStack, settings: Settings, timeout: float = 3.0) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from pipeline.kafka.client_config import client_config

    config = {**client_config(stack.client_settings(settings)), "log_level": 0}
    config.pop("logger")
    try:
        AdminClient(config).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


# ---------------------------------------------------------------- Redis


def _launch_redis(stack: SecureStack, log: Log) -> int:
    server = ensure_redis_server(log)
    password = _secret_file(stack.redis_password_file)
    ensure_certificates(stack, _secret_file(stack.dir / "store.password"))
    data = stack.dir / "redis-data"
    data.mkdir(parents=True, exist_ok=True)
    tls = stack.tls
    # a config file (mode 0600) rather than argv, so the password is not in `ps` output
    conf = stack.dir / "redis.conf"
    _private(
        conf,
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",
                f"tls-port {stack.redis_port}",
                f"tls-cert-file {tls / 'server.pem'}",
                f"tls-key-file {tls / 'server.key'}",
                f"tls-ca-cert-file {stack.ca}",
                "tls-auth-clients no",
                f"requirepass {password}",
                'save ""',
                "appendonly no",
                f"dir {data}",
                "daemonize no",
                'logfile ""',
            ]
        )
        + "\n",
    )
    return spawn([server, str(conf)], log_path=stack.dir / "redis.log",
                 pid_path=stack.dir / "redis.pid")  # fmt: skip


def redis_answers(stack: SecureStack, settings: Settings, timeout: float = 2.0) -> bool:
    import redis

    from pipeline.redis.client import connection_options

    secured = stack.client_settings(settings)
    client = redis.Redis.from_url(
        secured.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **connection_options(secured),
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


# ---------------------------------------------------------------- up, down, status


@dataclass(frozen=True)
class SecureStatus:
    name: str
    address: str
    up: bool
    pid: int | None
    log_file: Path


def up(
    settings: Settings,
    log: Log = print,
    *,
    kafka_port: int | None = None,
    redis_port: int | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> SecureStack:
    """Start the secured Kafka and Redis unless running; wait until both answer securely."""
    stack = _layout(settings, kafka_port, redis_port)
    stack.dir.mkdir(parents=True, exist_ok=True)
    stack.dir.chmod(0o700)
    with file_lock(stack.dir / ".lock"):
        (stack.dir / "ports.json").write_text(
            json.dumps({"kafka": stack.kafka_port, "redis": stack.redis_port}) + "\n"
        )
        checks = {
            "kafka": (stack.kafka_port, lambda: kafka_answers(stack, settings)),
            "redis": (stack.redis_port, lambda: redis_answers(stack, settings)),
        }
        launchers = {
            "kafka": lambda: _launch_kafka(stack, settings, log),
            "redis": lambda: _launch_redis(stack, log),
        }
        pending: dict[str, tuple[int, float]] = {}
        for name, (port, _) in checks.items():
            pid = live_pid(stack.dir / f"{name}.pid")
            if pid is None:
                if port_open("127.0.0.1", port):
                    raise StackError(
                        f"secured {name}: port {port} on 127.0.0.1 is taken by another process"
                    )
                pid = launchers[name]()
                log(f"secured {name}: starting (pid {pid}, log {stack.dir / (name + '.log')})")
            pending[name] = (pid, time.monotonic())
        while pending:
            for name, (pid, begun) in list(pending.items()):
                log_file = stack.dir / f"{name}.log"
                if not pid_alive(pid):
                    (stack.dir / f"{name}.pid").unlink(missing_ok=True)
                    raise StackError(
                        f"secured {name} (pid {pid}) exited; see {log_file}:\n{log_tail(log_file)}"
                    )
                port, answers = checks[name]
                if port_open("127.0.0.1", port) and answers():
                    log(f"secured {name}: up in {time.monotonic() - begun:.1f} s")
                    del pending[name]
                elif time.monotonic() - begun > timeout:
                    raise StackError(
                        f"secured {name} (pid {pid}) did not answer within {timeout:.0f} s; "
                        f"see {log_file}:\n{log_tail(log_file)}"
                    )
            if pending:
                time.sleep(0.5)
    return stack


def down(settings: Settings, log: Log = print) -> list[str]:
    stack = _layout(settings, None, None)
    stopped = []
    with file_lock(stack.dir / ".lock"):
        for name in ("kafka", "redis"):
            pid = stop(stack.dir / f"{name}.pid")
            log(f"secured {name}: " + (f"stopped (pid {pid})" if pid else "not running"))
            if pid:
                stopped.append(name)
    return stopped


def status(settings: Settings) -> list[SecureStatus]:
    """Each secured server; addresses and file names only, never a password."""
    stack = _layout(settings, None, None)
    rows = []
    for name, address, answers in (
        ("kafka", f"SASL_SSL://{stack.bootstrap}", lambda: kafka_answers(stack, settings)),
        ("redis", stack.redis_url, lambda: redis_answers(stack, settings)),
    ):
        pid = live_pid(stack.dir / f"{name}.pid")
        ready = pid is not None and stack.kafka_password_file.exists() and answers()
        rows.append(SecureStatus(name, address, ready, pid, stack.dir / f"{name}.log"))
    return rows
