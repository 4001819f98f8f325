"""`inferstream` command line: one module per command group, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Command modules, in help order. Each exposes register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (
    "stack_cmd",
    "topics_cmd",
    "produce_cmd",
    "tail_cmd",
    "worker_cmd",
    "demo_cmd",
    "drift_cmd",
    "bench_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    from pipeline import __version__

    parser = argparse.ArgumentParser(
        prog="inferstream",
        description="Event-driven ML inference on Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"inferstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"pipeline.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipeline.cli.{name}":
                continue  # command group not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"inferstream: error: {exc}", file=sys.stderr)
        return exc.exit_code


class CliError(Exception):
    """An error the user can act on; printed without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


if __name__ == "__main__":
    sys.exit(main())
