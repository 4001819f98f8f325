"""`inferstream bench`: the benchmark harness under bench/ (see bench/README.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark against same-run baselines on the real broker (bench/)"
    )
    from bench.cli import add_arguments

    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.cli import execute

    return execute(args)
