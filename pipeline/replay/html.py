"""The replay report as one self-contained HTML page: tables and inline SVG plots, no scripts,
nothing fetched, so it opens anywhere (and in a headless browser in the tests)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em }
table { border-collapse: collapse; margin: .5em 0 1.5em }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right }
th { background: #f4f4f4 } .ok { color: #176b2c } .bad { color: #a4161a }
svg text { font-size: 11px; fill: #333 } .bar { fill: #4a78b5 } .line { stroke: #b5584a }
"""


def render_html(report: dict[str, Any]) -> str:
    counts = report["counts"]
    verdict = (
        '<p class="ok" id="verdict">replay agrees with what was served</p>'
        if report["agree"]
        else '<p class="bad" id="verdict">replay differs from what was served</p>'
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>replay of {escape(report['stream'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Replay of {escape(report['stream'])}</h1>",
        verdict,
        _table("counts", ["what", "requests"], [[k.replace("_", " "), f"{v:,}"]
                                                 for k, v in counts.items()]),
        _table("coverage", ["partition", "start", "end", "records"],
               [[r["partition"], r["start"], r["end"], f"{r['records']:,}"]
                for r in report["coverage"]]),
        f"<p>model versions: served {escape(str(report['model_versions']['served']))}, "
        f"replayed {escape(str(report['model_versions']['replayed']))}; tolerance "
        f"{report['tolerance']:g}</p>",
        _agreement(report, "vs served"),
    ]  # fmt: skip
    for name in ("against", "noise"):
        if name in report:
            title = f"against {report.get('against_version')}" if name == "against" else "A/A noise"
            parts.append(f"<h2>{escape(title)}</h2>")
            parts.append(_agreement(report[name], name))
    batches = report.get("batches") or []
    if batches:
        parts.append("<h2>Latency per batch</h2>")
        parts.append(_line("batch-latency", [b["ms"] for b in batches], "ms per batch"))
    parts.append("</body></html>")
    return "\n".join(parts)


def _agreement(report: dict[str, Any], scope: str) -> str:
    out = []
    for name, agreement in report["agreement"].items():
        slug = f"{scope.replace(' ', '-')}-{name}"
        out.append(f"<h3>{escape(name)}</h3>")
        out.append(
            f"<p>identical {agreement['identical']:,}, within tolerance "
            f"{agreement['within_tolerance']:,}, differing {agreement['differing']:,}</p>"
        )
        histogram = agreement.get("delta_histogram")
        if histogram:
            out.append(_bars(f"delta-{slug}", histogram["labels"], histogram["counts"],
                             "requests per |delta|"))  # fmt: skip
        confusion = agreement.get("confusion")
        if confusion:
            out.append(_confusion(f"confusion-{slug}", confusion))
        largest = agreement.get("largest")
        if largest:
            rows = [[i["request_id"], i["served"], i["replayed"], f"{i['abs_delta']:.3g}"]
                    for i in largest]  # fmt: skip
            header = ["request id", "served", "replayed", "|delta|"]
            out.append(_table(f"largest-{slug}", header, rows))
    return "\n".join(out)


def _table(element_id: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table id="{escape(element_id)}"><tr>{head}</tr>{body}</table>'


def _confusion(element_id: str, cells: list[dict[str, Any]]) -> str:
    served = sorted({c["served"] for c in cells})
    replayed = sorted({c["replayed"] for c in cells})
    count = {(c["served"], c["replayed"]): c["count"] for c in cells}
    rows = [[f"served {s}", *(f"{count.get((s, r), 0):,}" for r in replayed)] for s in served]
    return _table(element_id, ["", *(f"replayed {r}" for r in replayed)], rows)


def _bars(element_id: str, labels: Sequence[str], values: Sequence[int], title: str) -> str:
    width, height, pad = 40 * len(values) + 60, 180, 30
    top = max(values) or 1
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - 2 * pad) * value / top
        x, y = 50 + 40 * i, height - pad - h
        bars.append(
            f'<rect class="bar" x="{x}" y="{y:.1f}" width="30" height="{h:.1f}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{x + 15}" y="{height - pad + 14}" text-anchor="middle">'
            f"{escape(label)}</text>"
            f'<text x="{x + 15}" y="{y - 3:.1f}" text-anchor="middle">{value}</text>'
        )
    return (
        f'<svg id="{escape(element_id)}" width="{width}" height="{height}" role="img">'
        f'<text x="5" y="14">{escape(title)}</text>{"".join(bars)}</svg>'
    )


def _line(element_id: str, values: Sequence[float], title: str) -> str:
    width, height, pad = 640, 180, 30
    top = max(values) or 1.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - (height - 2 * pad) * v / top:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg id="{escape(element_id)}" width="{width}" height="{height}" role="img">'
        f'<text x="5" y="14">{escape(title)} (max {top:.1f})</text>'
        f'<polyline class="line" fill="none" stroke-width="2" points="{points}"/></svg>'
    )
