"""Baseline detectors on the benchmark's data, run in a separate interpreter.

    <python with river and/or alibi-detect> baselines.py DATA.npz OUT.json

Standalone on purpose (numpy plus whichever baseline library imports): the baselines' pins
(alibi-detect wants numpy<2) must not touch the project's environment. Detectors missing from
this interpreter are reported as skipped.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _alibi(data: dict) -> dict:
    try:
        from alibi_detect.cd import KSDrift
    except Exception as exc:  # ImportError, or a broken optional backend
        return {"skipped": f"alibi-detect not importable: {exc}"}
    import alibi_detect

    batch = int(data["ksdrift_batch"])

    def detector(ref: np.ndarray):
        return KSDrift(ref, p_val=0.05, correction="bonferroni")

    out: dict = {
        "name": f"alibi-detect {alibi_detect.__version__} KSDrift "
        f"(tumbling {batch}, Bonferroni, p=0.05)"
    }
    ert_rows = data["ert_stream"]
    cd = detector(data["ert_reference"])
    started = time.perf_counter()
    alarms = 0
    usable = (ert_rows.shape[0] // batch) * batch
    for start in range(0, usable, batch):
        alarms += int(cd.predict(ert_rows[start : start + batch])["data"]["is_drift"])
    seconds = time.perf_counter() - started
    out["ert"] = {
        "rows": usable,
        "alarms": alarms,
        "ert": usable / alarms if alarms else None,
        "rows_per_s": usable / seconds,
    }
    for scenario in ("shift", "variance"):
        delays = []
        for run in range(data[f"{scenario}_rows"].shape[0]):
            rows, change = data[f"{scenario}_rows"][run], int(data[f"{scenario}_change"][run])
            cd = detector(data["references"][run])
            delay = None
            for start in range(0, rows.shape[0] - batch + 1, batch):
                end = start + batch
                if end <= change:
                    continue  # alarms before the change are false ones, not detections
                if cd.predict(rows[start:end])["data"]["is_drift"]:
                    delay = end - change
                    break
            delays.append(delay)
        out[scenario] = delays
    return out


def _river(data: dict) -> dict:
    try:
        import river
        from river.drift import KSWIN
    except Exception as exc:
        return {"skipped": f"river not importable: {exc}"}
    out: dict = {"name": f"river {river.__version__} KSWIN (defaults, one per feature)"}
    rows = data["kswin_stream"]
    detectors = [KSWIN(seed=j) for j in range(rows.shape[1])]
    alarms = 0
    started = time.perf_counter()
    for row in rows.astype(np.float64):
        fired = False
        for j, value in enumerate(row):
            detectors[j].update(float(value))
            fired |= detectors[j].drift_detected
        alarms += fired
    seconds = time.perf_counter() - started
    out["ert"] = {
        "rows": int(rows.shape[0]),
        "alarms": alarms,
        "ert": rows.shape[0] / alarms if alarms else None,
        "rows_per_s": rows.shape[0] / seconds,
    }
    warm = int(data["kswin_warm"])
    for scenario in ("shift", "variance"):
        delays = []
        for run in range(data[f"{scenario}_rows"].shape[0]):
            series = data[f"{scenario}_rows"][run][:, int(data["feature"])].astype(np.float64)
            change = int(data[f"{scenario}_change"][run])
            kswin = KSWIN(seed=run)
            delay = None
            for i in range(change - warm, series.shape[0]):
                kswin.update(float(series[i]))
                if kswin.drift_detected and i >= change:
                    delay = i + 1 - change
                    break
            delays.append(delay)
        out[scenario] = delays
    return out


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    with np.load(source) as npz:
        data = {k: npz[k] for k in npz.files}
    result = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "ksdrift": _alibi(data),
        "kswin": _river(data),
    }
    with open(target, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
