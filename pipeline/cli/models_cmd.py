"""`inferstream models list | route show|set | calibrate-cascade | shadow report | canary ...`.

The versions of a stream's model, its routing policy (models/<model>/routing.json, see
pipeline/tiers/policy.py) and what the tiers did: everything but `shadow report` reads only the
model directory; `shadow report` reads `<stream>.shadow` over a time range.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.cli import CliError
from pipeline.config import settings


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.core.registry import DEFAULT_STREAM

    models = sub.add_parser("models", help="model versions, routing policy, cascade, shadow")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
        parser.add_argument(
            "--stream", default=DEFAULT_STREAM, help=f"stream (default {DEFAULT_STREAM})"
        )
        if json_flag:
            parser.add_argument("--json", action="store_true", help="machine-readable output")

    listing = actions.add_parser("list", help="versions with held-out quality and cost")
    common(listing)
    listing.set_defaults(func=run_list)

    route = actions.add_parser("route", help="the routing policy: show or set")
    route_actions = route.add_subparsers(dest="route_action", metavar="ACTION", required=True)
    show = route_actions.add_parser("show", help="the policy in force and what it routes")
    common(show)
    show.set_defaults(func=run_route_show)
    set_ = route_actions.add_parser(
        "set", help="validate and write routing.json (workers reload it within a second)"
    )
    common(set_, json_flag=False)
    set_.add_argument("--primary", help="the version that serves (default: the current one)")
    set_.add_argument("--cascade-small", metavar="VERSION", help="cascade: the small version")
    set_.add_argument("--cascade-large", metavar="VERSION", help="cascade: default primary")
    set_.add_argument(
        "--bands", metavar="LO:HI[,LO:HI]", help="cascade: small-model scores to escalate"
    )
    set_.add_argument("--no-cascade", action="store_true", help="drop the cascade")
    set_.add_argument("--shadow", metavar="V[,V]", help="shadow versions ('' for none)")
    set_.add_argument("--canary", metavar="VERSION", help="canary version")
    set_.add_argument("--canary-share", type=float, metavar="PERCENT", help="0-100")
    set_.add_argument("--no-canary", action="store_true", help="drop the canary")
    set_.add_argument("--remove", action="store_true", help="delete routing.json")
    set_.set_defaults(func=run_route_set)

    calibrate = actions.add_parser(
        "calibrate-cascade", help="fit the cascade band on held-out data for a target"
    )
    common(calibrate)
    calibrate.add_argument("--small", required=True, help="the small version")
    calibrate.add_argument("--large", help="the large version (default: the primary)")
    calibrate.add_argument(
        "--target", type=float, default=0.995, help="decision agreement with large-only"
    )
    calibrate.add_argument(
        "--max-auc-drop", type=float, default=0.005, help="ROC AUC below large-only at most"
    )
    calibrate.add_argument(
        "--write", action="store_true", help="put the band into routing.json's cascade"
    )
    calibrate.set_defaults(func=run_calibrate)

    shadow = actions.add_parser("shadow", help="what the shadow versions did")
    shadow_actions = shadow.add_subparsers(dest="shadow_action", metavar="ACTION", required=True)
    report = shadow_actions.add_parser(
        "report", help="served vs shadow over a time range: flips, deltas, cost, latency"
    )
    common(report)
    report.add_argument("--from", dest="from_", default="-1h", help="start (default -1h)")
    report.add_argument("--to", help="end (default now)")
    report.set_defaults(func=run_shadow_report)

    canary = actions.add_parser("canary", help="the canary's gate: status, promote, rollback")
    canary_actions = canary.add_subparsers(dest="canary_action", metavar="ACTION", required=True)
    status = canary_actions.add_parser("status", help="pairs, flip rate, verdict, events")
    common(status)
    status.set_defaults(func=run_canary_status)
    for name, text in (("promote", "promote the candidate now"),
                       ("rollback", "roll the candidate back now")):  # fmt: skip
        decide = canary_actions.add_parser(name, help=text)
        common(decide, json_flag=False)
        decide.add_argument("--reason", default="by hand", help="recorded with the event")
        decide.set_defaults(func=run_canary_decide, decision=name)


def _plugin(stream: str) -> Any:
    from pipeline.core.registry import get_plugin

    return get_plugin(stream)


def _policy(stream: str) -> Any:
    from pipeline.tiers.policy import load_policy

    plugin = _plugin(stream)
    return load_policy(settings().models_dir, plugin.model_name, plugin.preprocessing_version)


def versions_table(stream: str) -> list[dict[str, Any]]:
    from pipeline.models.manifest import ModelManifest, available_versions
    from pipeline.tiers.costs import cost_section

    cfg, plugin = settings(), _plugin(stream)
    policy = _policy(stream)
    versions = available_versions(cfg.models_dir, plugin.model_name)
    roles: dict[str, list[str]] = {v: [] for v in versions}
    if policy is None:
        if versions:
            roles[versions[-1]].append("serving (highest version, no policy)")
    else:
        roles[policy.primary].append("primary")
        if policy.cascade:
            roles[policy.cascade.small].append("cascade-small")
            roles[policy.cascade.large].append("cascade-large")
        for v in policy.shadow:
            roles[v].append("shadow")
        if policy.canary:
            roles[policy.canary.version].append(f"canary {policy.canary.share_percent:g}%")
    rows = []
    for v in versions:
        manifest = ModelManifest.load(cfg.models_dir / plugin.model_name / v)
        metrics, cost = manifest.metrics, cost_section(manifest)
        rows.append({
            "version": v,
            "kind": manifest.training.get("kind", "large"),
            "estimator": manifest.training.get("estimator", ""),
            "roc_auc": metrics.get("roc_auc"),
            "pr_auc": metrics.get("pr_auc"),
            "at_thresholds": metrics.get("at_thresholds", {}),
            "thresholds": dict(manifest.thresholds),
            "seconds_per_row": cost.get("seconds_per_row"),
            "units_per_row": cost.get("units_per_row"),
            "roles": roles[v],
        })  # fmt: skip
    return rows


def run_list(args: argparse.Namespace) -> int:
    rows = versions_table(args.stream)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.stream} model versions", title_justify="left")
    for column in ("version", "kind", "ROC AUC", "PR AUC", "decline P/R", "units/row", "role"):
        table.add_column(column, no_wrap=column != "role")
    for r in rows:
        decline = r["at_thresholds"].get("decline", {})
        table.add_row(
            r["version"], str(r["kind"]), _num(r["roc_auc"]), _num(r["pr_auc"]),
            f"{_num(decline.get('precision'))}/{_num(decline.get('recall'))}",
            _num(r["units_per_row"]), ", ".join(r["roles"]),
        )  # fmt: skip
    Console().print(table)
    return 0


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def run_route_show(args: argparse.Namespace) -> int:
    from pipeline.tiers.policy import policy_path

    plugin = _plugin(args.stream)
    path = policy_path(settings().models_dir, plugin.model_name)
    policy = _policy(args.stream)
    out = {
        "file": str(path),
        "policy": policy.to_dict() if policy else None,
        "digest": policy.digest if policy else "",
        "serving": list(policy.serving) if policy else [versions_table(args.stream)[-1]["version"]],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if policy is None:
        print(f"no routing policy ({path} absent): the highest version {out['serving'][0]} serves")
        return 0
    print(f"routing policy {path} (digest {policy.digest})")
    print(json.dumps(policy.to_dict(), indent=2))
    return 0


def run_route_set(args: argparse.Namespace) -> int:
    from pipeline.tiers.policy import parse_policy, policy_path, write_policy

    cfg, plugin = settings(), _plugin(args.stream)
    path = policy_path(cfg.models_dir, plugin.model_name)
    if args.remove:
        path.unlink(missing_ok=True)
        print(f"removed {path}: the highest version serves (after a worker restart)")
        return 0
    current = _policy(args.stream)
    data: dict[str, Any] = current.to_dict() if current else {}
    if args.primary:
        data["primary"] = args.primary
    if "primary" not in data:
        raise CliError("no policy yet: give --primary")
    if args.no_cascade:
        data.pop("cascade", None)
    if args.cascade_small or args.bands or args.cascade_large:
        cascade = dict(data.get("cascade") or {})
        if args.cascade_small:
            cascade["small"] = args.cascade_small
        if args.cascade_large:
            cascade["large"] = args.cascade_large
        if args.bands:
            cascade["bands"] = _bands(args.bands)
            cascade.pop("calibration", None)  # a hand-set band is not the calibrated one
        data["cascade"] = cascade
    if args.shadow is not None:
        data["shadow"] = [v for v in args.shadow.split(",") if v]
        if not data["shadow"]:
            data.pop("shadow")
    if args.no_canary:
        data.pop("canary", None)
    if args.canary or args.canary_share is not None:
        canary = dict(data.get("canary") or {})
        if args.canary:
            canary["version"] = args.canary
        if args.canary_share is not None:
            canary["share_percent"] = args.canary_share
        data["canary"] = canary
    policy = parse_policy(
        data, cfg.models_dir, plugin.model_name, plugin.preprocessing_version, str(path)
    )
    write_policy(cfg.models_dir, plugin.model_name, policy)
    print(f"wrote {path} (digest {policy.digest}): {json.dumps(policy.to_dict())}")
    return 0


def _bands(text: str) -> list[list[float]]:
    bands = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        try:
            bands.append([float(lo), float(hi)])
        except ValueError:
            raise CliError(f"--bands {text!r}: expected LO:HI[,LO:HI], e.g. 0.1:0.2") from None
        if not sep:
            raise CliError(f"--bands {text!r}: expected LO:HI[,LO:HI], e.g. 0.1:0.2")
    return bands


def run_calibrate(args: argparse.Namespace) -> int:
    from pipeline.models.manifest import resolve_model_dir
    from pipeline.models.runtime import load_model
    from pipeline.tiers.calibrate import calibrate
    from pipeline.tiers.costs import units_per_row
    from pipeline.tiers.policy import parse_policy, policy_path, write_policy

    cfg, plugin = settings(), _plugin(args.stream)
    current = _policy(args.stream)
    large_version = args.large or (current.primary if current else None)
    small = load_model(resolve_model_dir(cfg.models_dir, plugin.model_name, args.small))
    large = load_model(resolve_model_dir(cfg.models_dir, plugin.model_name, large_version))
    if not 0.5 <= args.target <= 1.0:
        raise CliError(f"--target {args.target} must be in [0.5, 1]")
    report = calibrate(
        small, large, args.target, units_per_row(small.manifest), units_per_row(large.manifest),
        plugin=plugin, max_auc_drop=args.max_auc_drop,
    )  # fmt: skip
    if args.write:
        data = current.to_dict() if current else {"primary": large.manifest.version}
        ev = report["evaluation"]
        data["cascade"] = {
            "small": small.manifest.version,
            "large": large.manifest.version,
            "bands": report["bands"],
            "calibration": {
                "target_agreement": args.target,
                "max_auc_drop": args.max_auc_drop,
                "heldout_agreement": ev["agreement"],
                "heldout_deferral": ev["deferral"],
                "heldout_roc_auc_delta": ev["roc_auc_delta"],
                "heldout_cost_ratio": ev["cost_ratio"],
            },
        }
        path = policy_path(cfg.models_dir, plugin.model_name)
        policy = parse_policy(
            data, cfg.models_dir, plugin.model_name, plugin.preprocessing_version, str(path)
        )
        write_policy(cfg.models_dir, plugin.model_name, policy)
        report["written"] = str(path)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    ev, cal = report["evaluation"], report["calibration"]
    bands = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in report["bands"])
    print(f"cascade {report['small']} -> {report['large']}: escalate small scores in {bands}")
    print(f"  {report['heldout']}")
    for name, part in (("calibration", cal), ("evaluation", ev)):
        print(
            f"  {name:11s} agreement {part['agreement']:.4%} (target {args.target:.2%}), "
            f"deferral {part['deferral']:.2%}, ROC AUC {part['roc_auc_cascade']:.4f} vs "
            f"{part['roc_auc_large']:.4f} large-only ({part['roc_auc_delta']:+.4f}), "
            f"cost {part['cost_ratio']}x large-only"
        )
    if args.write:
        print(f"  written to {report['written']}")
    return 0


def run_shadow_report(args: argparse.Namespace) -> int:
    from pipeline.codec import AvroDeserializer, registry_from_settings
    from pipeline.kafka.ranges import read_ranges, resolve_times
    from pipeline.replay.ranges import time_range
    from pipeline.tiers.shadow import shadow_report

    cfg, plugin = settings(), _plugin(args.stream)
    topic = plugin.topics(cfg.topic_namespace).shadow
    span = time_range(args.from_, args.to)
    decode = AvroDeserializer(registry_from_settings(cfg))
    records = []
    for batch in read_ranges(
        cfg.kafka_bootstrap, topic, resolve_times(cfg.kafka_bootstrap, topic, *vars_(span))
    ):
        records += [decode(m.value) for m in batch]
    report = {"topic": topic, "from_ms": span.from_ms, "to_ms": span.to_ms,
              **shadow_report(records)}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{topic}: {report['rows']:,} shadowed requests", title_justify="left")
    for column in ("shadow", "rows", "flip rate", "flips", "|delta| p50/p99/max",
                   "units/row served/shadow", "ms/row served/shadow", "lag p99 ms"):  # fmt: skip
        table.add_column(column)
    for version, v in report["versions"].items():
        d, c, ms = v["score_delta"], v["cost_units_per_row"], v["ms_per_row"]
        table.add_row(
            version, f"{v['rows']:,}", f"{v['flip_rate']:.3%}",
            ", ".join(f"{k} {n}" for k, n in v["flips_by_decision"].items()) or "-",
            f"{d['p50_abs']:.2g}/{d['p99_abs']:.2g}/{d['max_abs']:.2g}",
            f"{c['served']:.3g}/{c['shadow']:.3g}", f"{ms['served']:.3g}/{ms['shadow']:.3g}",
            f"{v['lag_ms_p99']:.0f}",
        )  # fmt: skip
    Console().print(table)
    return 0


def _canary_store() -> Any:
    from pipeline.assembly import redis_client
    from pipeline.tiers.canary import CanaryStore
    from pipeline.tiers.wiring import canary_prefix

    cfg = settings()
    return CanaryStore(redis_client(cfg), canary_prefix(cfg))


def _tier_events(stream: str) -> Any:
    """The stream's TierEvents (tier_event records on `<stream>.events`), as a worker's."""
    import socket

    from pipeline.codec import registry_from_settings
    from pipeline.core.registry import get_plugin
    from pipeline.tiers.wiring import tier_events

    cfg = settings()
    topics = get_plugin(stream).topics(cfg.topic_namespace)
    return tier_events(registry_from_settings(cfg), topics, f"cli@{socket.gethostname()}")


def _publish_events(events: Any) -> None:
    """A by-hand decision's event, with the CLI's own publisher (it runs outside a worker)."""
    from confluent_kafka import KafkaException

    from pipeline.kafka.exceptions import DeliveryFailed
    from pipeline.kafka.publisher import Publisher

    publisher = Publisher.from_settings(settings())
    try:
        events.publish_now(publisher.publish)
    except (DeliveryFailed, KafkaException) as exc:
        raise CliError(
            f"the decision is recorded in Redis, but its event was not published to "
            f"{events.topic}: {exc}"
        ) from None
    finally:
        publisher.close()


def run_canary_status(args: argparse.Namespace) -> int:
    from pipeline.tiers.canary import CanaryState, GateRule

    policy = _policy(args.stream)
    store = _canary_store()
    states = store.all(args.stream)
    if store.redis.degraded:
        raise CliError(f"cannot reach Redis at {store.redis.url}")
    out = []
    for data in states:
        rule = GateRule(**data["gate"]["rule"])
        state = CanaryState.from_json(json.dumps(data), rule)
        out.append({
            "stable": state.stable, "candidate": state.candidate, "state": state.state,
            "share_percent": state.share_percent, "served_by_candidate": state.served_by_candidate,
            "verdict": vars(state.gate.verdict()), **state.gate.summary(),
            "rule": data["gate"]["rule"], "events": state.events,
            "in_policy": bool(policy and policy.canary
                              and policy.canary.version == state.candidate),
        })  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if not out:
        print("no canary has reported yet" + ("" if policy and policy.canary else
                                              " (the policy has no canary)"))  # fmt: skip
        return 0
    for c in out:
        print(f"{c['stable']} -> {c['candidate']} at {c['share_percent']:g}%: {c['state']}; "
              f"{c['pairs']} pairs, flip rate {c['flip_rate']:.4f} "
              f"{c['flip_rate_interval']}, mean |delta| {c['mean_abs_delta']:.4f}, "
              f"errors {c['errors']}, served by candidate {c['served_by_candidate']}")  # fmt: skip
        print(f"  verdict: {c['verdict']['decision']} ({c['verdict']['reason']})")
        for e in c["events"]:
            who = "automatic" if e["automatic"] else "by hand"
            print(f"  event {e['event']} ({who}) at {e['at_ms']}: {e['reason']}")
    return 0


def run_canary_decide(args: argparse.Namespace) -> int:
    from pipeline.tiers.canary import set_by_hand

    policy = _policy(args.stream)
    if policy is None or policy.canary is None:
        raise CliError(f"stream {args.stream}: the routing policy has no canary")
    events = _tier_events(args.stream)
    try:
        state = set_by_hand(
            _canary_store(), args.stream, policy.primary, policy.canary.version,
            policy.canary.share_percent, args.decision, args.reason, events,
        )  # fmt: skip
    except ConnectionError as exc:
        raise CliError(str(exc)) from None
    _publish_events(events)
    print(f"canary {state.stable} -> {state.candidate}: {state.state} (workers take it within "
          "a few seconds)")  # fmt: skip
    return 0


def vars_(span: Any) -> tuple[int, int]:
    return span.from_ms, span.to_ms
