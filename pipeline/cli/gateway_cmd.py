"""`inferstream gateway`: the HTTP gateway; `inferstream gateway keys add|list|revoke`."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import settings
from pipeline.core.registry import DEFAULT_STREAM


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli import Parser, add_log_level, non_negative_float, positive_float
    from pipeline.cli.worker_cmd import streams_arg

    p = sub.add_parser(
        "gateway",
        help="run the HTTP gateway (submit, poll by id, API keys, limits), or manage its keys",
    )
    p.add_argument(
        "--streams",
        type=streams_arg,
        default=DEFAULT_STREAM,
        help=f"comma list of streams to serve (default {DEFAULT_STREAM})",
    )
    p.add_argument("--host", help="listen address (default INFERSTREAM_GATEWAY_HOST)")
    p.add_argument(
        "--port", type=_port, help="TCP port, 0: any free one (default INFERSTREAM_GATEWAY_PORT)"
    )
    p.add_argument(
        "--model-version",
        help="model version whose cached results the fast path serves (default: latest)",
    )
    add_log_level(p)
    p.set_defaults(func=run)
    commands = p.add_subparsers(dest="gateway_command", metavar="COMMAND", parser_class=Parser)
    keys = commands.add_parser("keys", help="API keys: add, list, revoke")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=Parser)
    add = key_commands.add_parser("add", help="create a key (printed once) for a tenant")
    add.add_argument("--tenant", required=True)
    add.add_argument("--streams", default="*", help="comma list of streams it may use (default *)")
    add.add_argument(
        "--rps", type=non_negative_float, default=0.0, help="requests per second (0: unlimited)"
    )
    add.add_argument("--burst", type=int, default=0, help="requests at once (default: --rps)")
    add.add_argument(
        "--cost-per-hour",
        type=non_negative_float,
        default=0.0,
        help="cost units per hour, as the served model version's measured cost per row counts"
        " them (0: unlimited)",
    )
    add.add_argument(
        "--priority",
        type=int,
        default=0,
        help="load shedding: 0 (default) is shed first, each step doubles the "
        "queue wait a tenant accepts",
    )
    add.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    add.set_defaults(func=keys_add)
    ls = key_commands.add_parser("list", help="the keys (ids, tenants, limits; never the keys)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=keys_revoke)
    keys.set_defaults(func=lambda args: keys.print_help() or 2)
    del positive_float


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port in [0, 65535], got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in [0, 65535], got {text!r}")
    return value




def run(args: argparse.Namespace) -> int:
    import asyncio

    from pipeline.core.registry import parse_streams
    from pipeline.gateway.server import build_gateway, serve
    from pipeline.logs import configure

    cfg = settings()
    configure(args.log_level or cfg.log_level)
    gateway = build_gateway(cfg, parse_streams(args.streams), args.model_version)
    host = args.host or cfg.gateway_host
    port = cfg.gateway_port if args.port is None else args.port
    asyncio.run(serve(gateway, host, port))
    return 0


def _store():
    from pipeline.assembly import redis_client
    from pipeline.gateway.keys import KeyStore

    cfg = settings()
    return KeyStore(redis_client(cfg), cfg.topic_namespace)


def keys_add(args: argparse.Namespace) -> int:
    from pipeline.cli import CliError

    if args.burst < 0 or args.priority < 0:
        raise CliError("--burst and --priority must be >= 0", exit_code=2)
    key, info = _store().add(
        args.tenant, args.streams, args.rps, args.burst, args.cost_per_hour, args.priority
    )
    if args.json:
        print(json.dumps({"key": key, **info.as_row()}))
    else:
        print(key)
        print(
            f"key id {info.key_id} for tenant {info.tenant}: keep the key, it is not shown again",
            file=sys.stderr,
        )
    return 0


def keys_list(args: argparse.Namespace) -> int:
    rows = [k.as_row() for k in _store().list()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"{'key id':<13} {'tenant':<16} {'streams':<12} {'rps':>7} {'burst':>5} "
        f"{'cost/h':>9}  state"
    )
    for r in rows:
        print(
            f"{r['key_id']:<13} {r['tenant']:<16} {r['streams']:<12} {r['rps']:>7g} "
            f"{r['burst']:>5} {r['cost_per_hour']:>9g}  "
            f"{'revoked' if r['revoked'] else 'active'}"
        )
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    info = _store().revoke(args.key_id)
    print(f"revoked key {info.key_id} of tenant {info.tenant}")
    return 0
