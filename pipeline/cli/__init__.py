"""`inferstream` command line: one module per command group, each with `register(subparsers)`.

User errors (a bad flag, setting or input) are one line `inferstream: error: <message>` and a
non-zero exit code, 2 for usage errors; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from pipeline.errors import InferstreamError

# Command modules, in help order. Each exposes register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (
    "stack_cmd",
    "topics_cmd",
    "produce_cmd",
    "tail_cmd",
    "worker_cmd",
    "demo_cmd",
    "drift_cmd",
    "replay_cmd",
    "explain_cmd",
    "jobs_cmd",
    "gateway_cmd",
    "models_cmd",
    "top_cmd",
)


class CliError(InferstreamError):
    """An error the user can act on; printed without a traceback."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """`--log-level`, one of the levels of INFERSTREAM_LOG_LEVEL, case-insensitive."""
    from pipeline.config import LOG_LEVELS

    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default: INFERSTREAM_LOG_LEVEL or WARNING)",
    )


def build_parser() -> argparse.ArgumentParser:
    from pipeline import __version__

    parser = Parser(
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


# flags whose values may start with "-" (relative times: `--from -10m`), which argparse would
# take for an option; given as `--from=-10m` they parse
_DASH_VALUED = frozenset({"--from", "--to"})


def _attach_dash_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if token in _DASH_VALUED and following and following[0] == "-" and following[1:2].isdigit():
            out.append(f"{token}={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _attach_dash_values(sys.argv[1:] if argv is None else list(argv))
    try:
        parser = build_parser()  # reads the stream registry: a broken plug-in is one line too
    except InferstreamError as exc:
        print(f"inferstream: error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from pipeline.config import settings

        settings()  # every INFERSTREAM_* variable checked before any command starts work
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except InferstreamError as exc:
        print(f"inferstream: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
