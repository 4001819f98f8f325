import json

import pytest

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


def test_the_ar1_interval_resamples_whole_references() -> None:
    from bench.drift.__main__ import _reference_interval

    quiet = {"rows": 100_000, "opens": 2}
    noisy = {"rows": 100_000, "opens": 18}
    low, high = _reference_interval([quiet, noisy] * 4)
    assert low < 800_000 / 80 < high  # the pooled ERT (10,000) lies inside
    assert low >= 100_000 / 18 and high <= 100_000 / 2  # never beyond one reference alone
    # identical references leave nothing to resample; one reference gives no interval
    assert _reference_interval([quiet] * 5) == pytest.approx([50_000.0, 50_000.0])
    assert _reference_interval([quiet]) == [None, None]
    # resamples without an alarm: the upper end is unbounded, not a NaN
    silent = {"rows": 100_000, "opens": 0}
    low, high = _reference_interval([silent, {"rows": 100_000, "opens": 1}])
    assert low == pytest.approx(100_000) and high is None


def test_bad_flags_are_refused_before_any_work(capsys) -> None:
    for flag in (["--ar1-refs", "0"], ["--runs", "0"], ["--ar1-rows", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(flag)
        assert exit_info.value.code == 2
        assert "expected an integer >=" in capsys.readouterr().err
