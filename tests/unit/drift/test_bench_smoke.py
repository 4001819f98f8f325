import json

from bench.drift.__main__ import main


def test_bench_smoke_runs(tmp_path) -> None:
    report = main(["--smoke", "--out", str(tmp_path)])
    written = list(tmp_path.glob("drift-*.json"))
    assert len(written) == 1
    saved = json.loads(written[0].read_text())
    assert saved["smoke"] is True
    for key in ("ert", "delays", "throughput", "targets", "baselines", "engine", "diurnal"):
        assert key in saved
    assert report["delays"]["shift"]["runs"] == 3
    assert report["diurnal"]["night_runs"] == 3 and report["engine"]["drift_rows_per_s"] > 0
