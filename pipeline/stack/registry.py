"""A local Schema Registry on loopback: Apicurio Registry from Maven Central, no Docker.

The archive (`io.apicurio:apicurio-registry-app:<version>:tar.gz:all`, pinned by sha256) is
fetched once with Maven, as Kafka's jars are, and unpacked under the cache directory;
`java -jar quarkus-run.jar` runs it with its H2 database in a file under the state directory
(as Kafka's data: the ids on the topics must still resolve after a restart; in memory, a
restarted registry would hand the same ids to other schemas), every rule-less subject checked
BACKWARD (without a global rule Apicurio checks nothing), its Confluent-compatible API at
`/apis/ccompat/v7` (confluent-kafka's SchemaRegistryClient and serdes talk to it) and health
on the management port (the HTTP port + 1). It needs Java 21 or newer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config import Settings, redact_url
from pipeline.stack.kafka import java_major_version
from pipeline.stack.process import (
    StackError,
    fetch_once,
    is_loopback,
    maven_failed,
    parse_hostport,
    run_maven,
    spawn,
)

REGISTRY_VERSION = "3.3.3"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"
ARCHIVE_SHA256 = "8bc6751c76d963734224b01d5e7f84ccb3cb61c87d3bd77c36c35f10a5cbed63"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"  # as ops/kafka/pom
MIN_JAVA = 21
CCOMPAT_PATH = "/apis/ccompat/v7"
DEFAULT_PORT = 18081  # 8081 is Confluent's usual port: left for a registry of the user's own
DEFAULT_REGISTRY_URL = f"http://127.0.0.1:{DEFAULT_PORT}{CCOMPAT_PATH}"
DEFAULT_HEAP_OPTS = "-Xms64m -Xmx512m"
JVM_DIRS = (Path("/usr/lib/jvm"),)

ALTERNATIVES = (
    "Alternatives: set INFERSTREAM_REGISTRY_JAVA to a Java 21+ (a `java` binary or a JDK home), "
    "point INFERSTREAM_SCHEMA_REGISTRY_URL at a Schema Registry you already run, or run "
    "without one (INFERSTREAM_SCHEMA_REGISTRY_URL unset: schema ids from schemas/)."
)

Log = Callable[[str], None]


def registry_url(settings: Settings) -> str:
    """The registry the stack manages: INFERSTREAM_SCHEMA_REGISTRY_URL, else the default."""
    return settings.schema_registry_url or DEFAULT_REGISTRY_URL


def parse_registry_url(url: str) -> tuple[str, int]:
    """(host, port) of an http(s):// registry URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise StackError(
            f"INFERSTREAM_SCHEMA_REGISTRY_URL={redact_url(url)!r}: expected http://host:port/..."
        )
    netloc = parts.netloc.rsplit("@", 1)[-1]  # drop user:password@
    return parse_hostport(netloc, default_port=443 if parts.scheme == "https" else 80)


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """`GET <url>/subjects` answers with a JSON list: a Confluent-compatible registry."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/subjects", timeout=timeout) as reply:
            return reply.status == 200 and isinstance(json.loads(reply.read()), list)
    except (OSError, ValueError, urllib.error.URLError):
        return False


# ---------------------------------------------------------------- java 21+


def java_candidates(settings: Settings, jvm_dirs: Iterable[Path] = JVM_DIRS) -> list[str]:
    """Where a Java may be, in the order tried: the setting alone when it is set (an explicit
    choice is not second-guessed), else JAVA_HOME, PATH, /usr/lib/jvm/* (newest-looking
    directory names first)."""

    def binary(base: str) -> str:
        path = Path(base).expanduser()
        return str(path / "bin" / "java") if path.is_dir() else str(path)

    if settings.registry_java:
        return [binary(settings.registry_java)]
    found = [binary(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    found.append(shutil.which("java") or "")
    for directory in jvm_dirs:
        homes = sorted(directory.glob("*/bin/java"), key=lambda p: p.parts[-3], reverse=True)
        found += [str(p) for p in homes]
    return list(dict.fromkeys(c for c in found if c))


def find_registry_java(settings: Settings, jvm_dirs: Iterable[Path] = JVM_DIRS) -> str:
    """The first Java 21+ among `java_candidates`; StackError naming the alternatives."""
    seen: list[str] = []
    for java in java_candidates(settings, jvm_dirs):
        if not os.access(java, os.X_OK):
            seen.append(f"{java} is not an executable")
            continue
        major = java_major_version(java)
        if major is not None and major >= MIN_JAVA:
            return java
        seen.append(f"{java} is Java {major if major is not None else '(unknown version)'}")
    found = "; ".join(seen) or "no `java` found"
    raise StackError(
        f"the local Schema Registry (Apicurio {REGISTRY_VERSION}) needs Java {MIN_JAVA}+ "
        f"({found}). {ALTERNATIVES}"
    )


# ---------------------------------------------------------------- the archive


def registry_home(settings: Settings, version: str = REGISTRY_VERSION) -> Path:
    return settings.cache_dir / f"apicurio-registry-{version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_archive(settings: Settings, log: Log) -> Path:
    """The unpacked registry (the directory of `quarkus-run.jar`), fetched on first use."""
    home = registry_home(settings)
    app = home / "app"

    def fetch() -> str:
        what = f"Apicurio Registry {REGISTRY_VERSION} into {home}"
        download = home / "download"
        shutil.rmtree(home, ignore_errors=True)
        download.mkdir(parents=True)
        log(f"fetching Apicurio Registry {REGISTRY_VERSION} from Maven Central (first run only)")
        started = time.monotonic()
        result = run_maven(
            [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ARTIFACT}",
             f"-DoutputDirectory={download}"],
            what, ALTERNATIVES, cwd=home,
        )  # fmt: skip
        archives = sorted(download.glob("*.tar.gz"))
        if result.returncode != 0 or len(archives) != 1:
            raise maven_failed(result, ARTIFACT)
        digest = sha256_of(archives[0])
        if digest != ARCHIVE_SHA256:
            raise StackError(
                f"{archives[0]} has sha256 {digest}, expected {ARCHIVE_SHA256}: not the pinned "
                f"Apicurio Registry {REGISTRY_VERSION} (delete {home} to fetch it again)"
            )
        with tarfile.open(archives[0]) as archive:
            archive.extractall(app, filter="data")
        if not (app / "quarkus-run.jar").is_file():
            raise StackError(f"{archives[0]} holds no quarkus-run.jar")
        shutil.rmtree(download)  # 159 MB; the unpacked copy is what runs
        log(f"done in {time.monotonic() - started:.1f} s")
        return f"{REGISTRY_VERSION} {ARCHIVE_SHA256}\n"

    fetch_once(home, fetch)
    return app


# ---------------------------------------------------------------- the server


def server_properties(
    *, host: str, port: int, management_port: int, cache_dir: Path, data_dir: Path
) -> dict[str, str]:
    return {
        "quarkus.http.host": host,
        "quarkus.http.port": str(port),
        "quarkus.management.host": host,
        "quarkus.management.port": str(management_port),
        "vertx.cacheDirBase": str(cache_dir),
        "apicurio.datasource.url": f"jdbc:h2:file:{data_dir / 'registry'}",
        "quarkus.http.access-log.enabled": "false",  # a line per request: logs stay quiet
        # without a global rule Apicurio accepts any change; Confluent's default is BACKWARD
        "apicurio.rules.global.compatibility": "BACKWARD",
    }


class RegistryService:
    """The Apicurio Registry `inferstream stack up --registry` runs for the registry URL."""

    name = "registry"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = registry_url(settings)
        self.host, self.port = parse_registry_url(self.url)
        self.management_port = self.port + 1
        self.dir = settings.state_dir / "stack" / f"registry-{self.port}"
        self.pid_file = self.dir / "registry.pid"
        self.log_file = self.dir / "registry.log"
        self.data_dir = self.dir / "data"

    @property
    def address(self) -> str:
        return self.url

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.management_port}/health/ready"

    def answers(self, timeout: float = 2.0) -> bool:
        return registry_answers(self.url, timeout)

    def prepare(self, log: Log) -> None:
        """What a start needs that may fail early: the URL's path, Java 21+, the archive."""
        if is_loopback(self.host) and urlsplit(self.url).path.rstrip("/") != CCOMPAT_PATH:
            raise StackError(
                f"INFERSTREAM_SCHEMA_REGISTRY_URL={redact_url(self.url)!r}: the local registry "
                f"serves its Confluent API at {CCOMPAT_PATH}; set it to "
                f"http://{self.host}:{self.port}{CCOMPAT_PATH}"
            )
        self._java = find_registry_java(self.settings)
        self._app = ensure_archive(self.settings, log)

    def launch(self, log: Log) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        props = server_properties(
            host=self.host,
            port=self.port,
            management_port=self.management_port,
            cache_dir=self.dir / "vertx",
            data_dir=self.data_dir,
        )
        argv = [
            self._java, *DEFAULT_HEAP_OPTS.split(), "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar", str(self._app / "quarkus-run.jar"),
        ]  # fmt: skip
        return spawn(argv, log_path=self.log_file, pid_path=self.pid_file, cwd=self.dir)
