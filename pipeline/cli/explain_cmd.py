"""`inferstream explain <request-id>`: a request, what was served for it, and a re-score."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.config import settings
from pipeline.core.registry import DEFAULT_STREAM, stream_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="show one request: its inputs, the served output, the model and batch, a re-score",
    )
    p.add_argument("request_id")
    p.add_argument(
        "--stream", choices=stream_names(), default=DEFAULT_STREAM,
        help=f"the request's stream (default {DEFAULT_STREAM})",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="the explanation as JSON, for tools")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.replay.explain import explain

    found = explain(settings(), args.stream, args.request_id)
    print(json.dumps(found, indent=2, default=str) if args.json else render(found))
    return 0


def render(found: dict[str, Any]) -> str:
    source = found["source"]
    where = f"{source['topic']} partition {source['partition']} offset {source['offset']}"
    lines = [f"request {found['request_id']} ({found['stream']}), from {where}"]
    if "dead_letter" in found:
        dead = found["dead_letter"]
        lines.append(f"dead-lettered at {dead['stage']}: {dead['reason']}: {dead['detail']}")
        if found["request"] is not None:
            lines.append("request: " + json.dumps(found["request"], default=str))
        return "\n".join(lines)
    lines.append("request: " + json.dumps(found["request"], default=str))
    lines.append("model inputs:")
    lines += [f"  {name:28} {value:.6g}" for name, value in found["model_inputs"].items()]
    model, batch = found["model"], found["batch"]
    lines.append(f"served: {found['served']}  (latency {found['latency_ms']} ms)")
    lines.append(
        f"model {model['name']} {model['version']} (sha256 {model['sha256'][:12]}...) on "
        f"{model['execution_provider']}, thresholds {model['thresholds']}"
    )
    lines.append(
        f"batch {batch['id']}: {batch['size']} requests, cut {batch['cut']}, queue wait "
        f"{batch['queue_wait_ms']:.1f} ms, inference {batch['inference_ms']:.2f} ms; "
        f"cache hit {found['cache_hit']}, degraded {found['degraded']}"
    )
    lines.append(
        f"re-scored now: {found['rescored']} -> "
        + ("reproduced" if found["reproduced"] else "DIFFERS from what was served")
        + ("" if found["data_hash_equal"] else " (model inputs differ: data_hash changed)")
    )
    return "\n".join(lines)
