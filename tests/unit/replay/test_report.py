"""The replay report from pairs of (replayed, served): counts, fidelity, deltas, flips, HTML."""

from __future__ import annotations

from pipeline.replay.html import render_html
from pipeline.replay.report import Pair, build_report
from pipeline.replay.rescore import Replayed

FIELDS = {"score": True, "decision": False}


def pair(i: int, served: tuple[float, str] | None, replayed: tuple[float, str] | None,
         same_hash: bool = True) -> Pair:  # fmt: skip
    rid = f"r{i}" if i != 2 else "<script>alert(1)</script>"
    def result(v: tuple[float, str]) -> dict:
        return {"request_id": rid, "model_version": "1.0.0", "score": v[0], "decision": v[1]}
    prov = {"data_hash": "h", "preprocessing_version": "p/1"}
    other = prov if same_hash else {"data_hash": "x", "preprocessing_version": "p/2"}
    return Pair(
        (0, i),
        Replayed(rid, result(replayed) if replayed else None, other if replayed else None),
        result(served) if served else None,
        prov if served else None,
        None,
    )


def report() -> dict:
    pairs = [
        pair(0, (0.5, "review"), (0.5, "review")),
        pair(1, (0.1, "approve"), (0.1 + 1e-9, "approve")),
        pair(2, (0.1, "approve"), (0.7, "decline")),
        pair(3, None, (0.2, "approve")),
        pair(4, (0.3, "review"), (0.3, "review"), same_hash=False),
    ]
    coverage = [{"partition": 0, "start": 0, "end": 5, "records": 5}]
    return build_report("fraud", pairs, FIELDS, coverage, tolerance=1e-6, top=3, seconds=1.0)


def test_counts_fidelity_and_agreement() -> None:
    r = report()
    assert r["counts"]["in_range"] == 5 and r["counts"]["matched"] == 4
    assert r["counts"]["unmatched_replay_only"] == 1 and r["counts"]["data_hash_equal"] == 3
    assert r["fidelity"]["mismatches"][0]["replayed_preprocessing"] == "p/2"
    score = r["agreement"]["score"]
    assert (score["identical"], score["within_tolerance"], score["differing"]) == (2, 1, 1)
    assert score["largest"][0]["request_id"].startswith("<script>")
    assert abs(score["abs_delta"]["max"] - 0.6) < 1e-9
    assert sum(score["delta_histogram"]["counts"]) == 4
    assert r["agreement"]["decision"]["flips"] == {"approve -> decline": 1}
    assert r["agree"] is False


def test_the_html_page_is_self_contained_and_escapes_what_it_shows() -> None:
    page = render_html(report())
    assert page.startswith("<!doctype html>") and "<script>" not in page
    assert "&lt;script&gt;alert(1)" in page  # the largest delta's request id, escaped
    assert 'id="delta-vs-served-score"' in page and 'id="confusion-vs-served-decision"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched
