"""`inferstream bench`: the benchmark harness under bench/ (see bench/README.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _comma_list(item: Callable[[str], object], what: str) -> Callable[[str], str]:
    """argparse type: a comma list whose every item `item` accepts; the text is kept as given."""

    def check(text: str) -> str:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma list of {what}, got {text!r}")
        for x in items:
            try:
                item(x)
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"expected a comma list of {what}, got {text!r}"
                ) from None
        return text

    return check


def _types() -> dict[str, Callable[[str], object]]:
    from pipeline.cli import positive_float, positive_int

    return {
        "events": positive_int,
        "rate_seconds": positive_float,
        "loads": _comma_list(positive_float, "numbers > 0"),
        "slos": _comma_list(positive_float, "numbers > 0"),
        "batch_sizes": _comma_list(positive_int, "integers >= 1"),
        "processes": _comma_list(positive_int, "integers >= 1"),
        "slo": positive_float,
        "batch_max": positive_int,
        "window": _nonnegative_float,
    }


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark against same-run baselines on the real broker (bench/)"
    )
    from bench.cli import add_arguments

    add_arguments(p)
    # bench/cli.py declares the flags; their values are checked here, at parse time (exit 2)
    types = _types()
    for action in p._actions:
        if action.dest in types:
            action.type = types[action.dest]
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.cli import execute

    return execute(args)
