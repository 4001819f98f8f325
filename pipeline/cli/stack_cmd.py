"""`inferstream stack up|down|status|deps`: the local Kafka + Redis (+ a Schema Registry)."""

from __future__ import annotations

import argparse

from pipeline.cli import CliError, positive_float
from pipeline.config import Settings, redact_url


def register(subparsers: argparse._SubParsersAction) -> None:
    stack = subparsers.add_parser(
        "stack",
        help="run a local single-node Kafka (KRaft) and Redis without Docker",
        description=(
            "Start, stop and inspect a single-node Apache Kafka (KRaft, jars from Maven "
            "Central) and a Redis server on loopback, at the addresses in "
            "INFERSTREAM_KAFKA_BOOTSTRAP and INFERSTREAM_REDIS_URL. Data and logs live under "
            "INFERSTREAM_STATE_DIR/stack. With --registry (or INFERSTREAM_SCHEMA_REGISTRY_URL "
            "set), an Apicurio Schema Registry too (Java 21+)."
        ),
    )
    sub = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start what is not running (idempotent); wait until ready")
    up.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="seconds to wait for readiness (default 60)",
    )
    up.set_defaults(func=cmd_up)
    up.add_argument(
        "--registry",
        action="store_true",
        help="also a Schema Registry (Apicurio, Java 21+) at INFERSTREAM_SCHEMA_REGISTRY_URL "
        "(default http://127.0.0.1:18081/apis/ccompat/v7); on when that variable is set",
    )
    dn = sub.add_parser("down", help="stop the servers `stack up` started")
    dn.set_defaults(func=cmd_down)
    st = sub.add_parser("status", help="show each server; exit 1 unless all answer")
    st.set_defaults(func=cmd_status)
    st.add_argument(
        "--registry",
        action="store_true",
        help="show the Schema Registry even when it is neither configured nor running",
    )
    for action in (up, dn, st):
        action.add_argument(
            "--secure",
            action="store_true",
            help="the secured stack instead: Kafka SASL_SSL (SCRAM-SHA-512) on 19094, Redis "
            "TLS + password on 16380, a local CA (pipeline/stack/secure.py)",
        )
    deps = sub.add_parser(
        "deps",
        help="install redis-server / fetch the Kafka jars and the Schema Registry without "
        "starting anything",
    )
    deps.set_defaults(func=cmd_deps)


def cmd_up(args: argparse.Namespace) -> int:
    from pipeline import stack

    settings = Settings.from_env()
    if args.secure:
        if args.registry:
            raise CliError("--registry is not available with --secure", exit_code=2)
        return _secure_up(settings, args.timeout)
    services = stack.services_for(settings, registry=args.registry)
    try:
        info = stack.ensure_up(settings, timeout=args.timeout, services=services)
    except stack.StackError as exc:
        raise CliError(str(exc)) from None
    print(f"Kafka bootstrap: {info.bootstrap}")
    print(f"Redis URL:       {redact_url(info.redis_url)}")
    if info.registry_url:
        print(f"Schema Registry: {redact_url(info.registry_url)}")
        if not settings.schema_registry_url:
            print(f"  (registry mode: export INFERSTREAM_SCHEMA_REGISTRY_URL={info.registry_url})")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from pipeline import stack

    try:
        if args.secure:
            from pipeline.stack import secure

            secure.down(Settings.from_env())
        else:
            stack.down(Settings.from_env())
    except stack.StackError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline import stack

    if args.secure:
        return _secure_status(Settings.from_env())
    try:
        rows = stack.status(Settings.from_env(), registry=args.registry)
    except stack.StackError as exc:
        raise CliError(str(exc)) from None
    width = max(len(r.address) for r in rows)
    name_width = max(6, *(len(r.name) for r in rows))
    for r in rows:
        if r.pid is not None:
            who = f"pid {r.pid}, started by inferstream, log {r.log_file}"
        elif not r.local:
            who = "external"
        else:
            who = "not started by inferstream" if r.up else ""
        state = "up" if r.up else "down"
        print(f"{r.name:<{name_width}} {r.address:<{width}}  {state:<4}  {who}".rstrip())
    return 0 if all(r.up for r in rows) else 1


def cmd_deps(args: argparse.Namespace) -> int:
    from pipeline import stack

    try:
        stack.ensure_deps(Settings.from_env())
    except stack.StackError as exc:
        raise CliError(str(exc)) from None
    print("stack dependencies are in place")
    return 0


def _secure_up(settings: Settings, timeout: float) -> int:
    from pipeline.stack import StackError, secure

    try:
        started = secure.up(settings, timeout=timeout)
    except StackError as exc:
        raise CliError(str(exc)) from None
    print("# client settings for the secured stack (passwords stay in their files):")
    for name, value in started.client_env().items():
        print(f"export {name}={value}")
    return 0


def _secure_status(settings: Settings) -> int:
    from pipeline.stack import secure

    rows = secure.status(settings)
    width = max(len(r.address) for r in rows)
    for r in rows:
        who = f"pid {r.pid}, log {r.log_file}" if r.pid else ""
        print(f"{r.name:<6} {r.address:<{width}}  {'up' if r.up else 'down':<4}  {who}".rstrip())
    return 0 if all(r.up for r in rows) else 1
