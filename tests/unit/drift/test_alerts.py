import numpy as np
import pytest

from pipeline.drift import AlertState, DriftConfig, DriftDetector, Reference
from pipeline.drift.alerts import AlertMachine


def test_machine_persistence_hysteresis_and_cooldown() -> None:
    machine = AlertMachine(1, persistence=2, resolve_ratio=0.8, resolve_rows=30, cooldown_rows=20)
    thr = 2.0

    def step(value: float) -> tuple[bool, bool]:
        opened, resolved = machine.step(np.array([value]), thr, 10)
        return bool(opened[0]), bool(resolved[0])

    assert step(2.5) == (False, False)  # one check over: not persistent yet
    assert step(1.0) == (False, False)  # streak broken
    assert step(2.5) == (False, False)
    assert step(2.6) == (True, False)  # two consecutive: OPEN
    for _ in range(5):  # between 0.8 x thr and thr: neither opens nor resolves
        assert step(1.8) == (False, False)
    assert step(1.5) == (False, False)  # 10 rows under 1.6
    assert step(1.5) == (False, False)  # 20
    assert step(1.7) == (False, False)  # back in the band: the count restarts
    assert step(1.0) == (False, False)
    assert step(1.0) == (False, False)
    assert step(1.0) == (False, True)  # 30 rows under: RESOLVED
    assert step(3.0) == (False, False)  # cooling down (10 of 20 rows)
    assert step(3.0) == (False, False)  # cooldown over at this check; streak starts: 1
    assert step(3.0) == (True, False)


def _detector(tmp_path, **overrides) -> tuple[DriftDetector, np.random.Generator]:
    rng = np.random.default_rng(5)
    reference = Reference.from_rows(rng.standard_normal((2000, 3)), ["a", "b", "c"])
    config = DriftConfig(windows=(100, 300), **overrides)
    # fixed thresholds: this test is about the state machine, not the calibration
    return DriftDetector(reference, config, tmp_path, thresholds=np.full(3, 2.3)), rng


def _feed(detector: DriftDetector, rows: np.ndarray, batch: int = 10) -> list:
    events = []
    for start in range(0, rows.shape[0], batch):
        events += detector.update(
            rows[start : start + batch],
            offsets=np.arange(start, min(start + batch, rows.shape[0])) + 1000,
            timestamps_ms=np.arange(start, min(start + batch, rows.shape[0])) * 5,
        )
    return events


def test_open_update_resolve_cycle(tmp_path) -> None:
    detector, rng = _detector(tmp_path)
    quiet = rng.standard_normal((1000, 3)).astype(np.float32)
    drift = rng.standard_normal((1500, 3)).astype(np.float32)
    drift[:, 1] += 1.0
    back = rng.standard_normal((1500, 3)).astype(np.float32)
    events = _feed(detector, np.concatenate([quiet, drift, back]))
    mine = [e for e in events if e.feature == "b"]
    assert mine[0].state is AlertState.OPEN
    assert mine[-1].state is AlertState.RESOLVED
    assert sum(e.state is AlertState.OPEN for e in mine) == 1
    opened, resolved = mine[0], mine[-1]
    assert 1000 < opened.rows_seen < 1200  # a 1-sd shift is seen within ~100 rows
    assert opened.z > opened.threshold == pytest.approx(2.3)
    assert opened.statistic >= 0.05 and opened.mean_shift > 0.5 and opened.wasserstein > 0.5
    assert opened.severity == "MAJOR"  # D >= 0.1
    assert opened.ranked_features[0].feature == "b"
    assert opened.last_offset == 1000 + opened.rows_seen - 1
    assert opened.first_offset == opened.last_offset - opened.window + 1
    assert opened.window_end_ms == (opened.rows_seen - 1) * 5
    assert 0 <= opened.p_value < 1e-3
    updates = [e for e in mine if e.state is AlertState.UPDATE]
    assert updates, "a persisting drift sends updates"
    # rate limited: z grew by 20% or W_max rows passed since the previous event
    previous = opened
    for update in updates:
        grew = update.z >= 1.2 * previous.z - 1e-9
        assert grew or update.rows_seen - previous.rows_seen >= 300
        previous = update
    # resolution: only after W_max rows back under 0.8 x threshold
    assert resolved.rows_seen >= 2500 + 300
    assert resolved.z < 0.8 * 2.3


def test_cooldown_blocks_reopening(tmp_path) -> None:
    detector, rng = _detector(tmp_path, cooldown_rows=5000)
    rows = rng.standard_normal((6000, 3)).astype(np.float32)
    rows[1000:1500, 0] += 1.5
    rows[2500:3500, 0] += 1.5  # after the first alert resolves, within the cooldown
    events = [e for e in _feed(detector, rows) if e.feature == "a"]
    assert [e.state for e in events if e.state is not AlertState.UPDATE] == [
        AlertState.OPEN,
        AlertState.RESOLVED,
    ]


def test_avro_record_is_valid(tmp_path) -> None:
    import fastavro

    from pipeline.config import REPO_ROOT

    schema = fastavro.parse_schema(
        __import__("json").loads((REPO_ROOT / "schemas" / "drift_alert.v2.avsc").read_text())
    )
    detector, rng = _detector(tmp_path)
    rows = rng.standard_normal((1500, 3)).astype(np.float32)
    rows[1000:, 2] -= 1.0
    events = _feed(detector, rows)
    assert events
    for event in events:
        record = event.to_avro_dict("fraud", "fraud-gbm", "3", 1_700_000_000_000)
        assert fastavro.validation.validate(record, schema, strict=True)
        assert record["reference_version"] == detector.reference.version


def test_alert_records_say_how_the_threshold_was_set_and_v1_stays_readable(tmp_path) -> None:
    from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
    from pipeline.codec.registry import LocalRegistry
    from pipeline.config import REPO_ROOT

    catalog = SchemaCatalog(REPO_ROOT / "schemas")
    registry = LocalRegistry(catalog)
    latest = catalog.latest("drift_alert")
    assert latest.version >= 2
    v1 = next(v for v in catalog.versions("drift_alert") if v.version == 1)
    detector, rng = _detector(tmp_path)
    rows = rng.standard_normal((1500, 3)).astype(np.float32)
    rows[1000:, 2] -= 1.0
    event = _feed(detector, rows)[0]
    record = event.to_avro_dict("fraud", "fraud-gbm", "3", 1_700_000_000_000)
    assert record["calibration"] == "given"  # thresholds were passed in, not calibrated
    assert record["reference_rows"] == 2000
    assert record["check_every"] == 10 and record["windows"] == [100, 300]
    assert record["target_ert"] == detector.config.target_ert
    assert record["window"] in record["windows"]
    read = AvroDeserializer(registry, latest)
    assert read(AvroSerializer(registry, latest, "drift.alerts")(record))["calibration"] == "given"
    # an alert written with v1 (no calibration fields) decodes with the defaults
    old = {k: v for k, v in record.items() if k in {f["name"] for f in v1.parsed["fields"]}}
    decoded = read(AvroSerializer(registry, v1, "drift.alerts")(old))
    assert decoded["calibration"] == "unknown" and decoded["windows"] == []
    assert decoded["z"] == record["z"]


@pytest.mark.parametrize(
    ("label", "kind", "detail"),
    [
        ("iid", "iid", ""),
        ("block-bootstrap(block=12, rows=5000)", "block-bootstrap", "block=12, rows=5000"),
        ("chi2(day)", "time-of-day", "chi2(day)"),
        ("given", "given", ""),
        ("something new", "unknown", ""),
    ],
)
def test_calibration_labels_map_to_the_recorded_kind(label: str, kind: str, detail: str) -> None:
    from pipeline.drift.alerts import calibration_kind

    assert calibration_kind(label) == (kind, detail)


@pytest.mark.parametrize("persistence", [1, 3])
def test_skipping_quiet_checks_is_stepping_through_them(persistence: int) -> None:
    rng = np.random.default_rng(persistence)
    d, checks, rows = 6, 4000, 10
    threshold = np.full(d, 2.0)
    # long quiet stretches, bursts over the threshold, some in the hysteresis band
    evidence = rng.gamma(2.0, 0.25, (checks, d))
    starts = (rng.random((checks, d)) < 0.002).astype(float)
    bursts = np.stack([np.convolve(starts[:, j], np.ones(30))[:checks] for j in range(d)], 1)
    evidence[bursts > 0] += rng.choice([0.0, 0.8, 2.0], (checks, d), p=[0.1, 0.2, 0.7])[
        bursts > 0
    ]
    stepped, skipping = (AlertMachine(d, persistence, 0.8, 100, 250) for _ in range(2))
    expected = []
    for c in range(checks):
        opened, resolved = stepped.step(evidence[c], threshold, rows)
        expected += [(c, "open", j) for j in np.flatnonzero(opened)]
        expected += [(c, "resolve", j) for j in np.flatnonzero(resolved)]
    seen, c, skipped, skipped_open = [], 0, 0, 0
    while c < checks:
        quiet = skipping.quiet_checks(evidence[c:], threshold, rows)
        if (skipping.phase == AlertMachine.ACTIVE).any():
            skipped_open += quiet
        skipping.skip(evidence[c : c + quiet], threshold, rows)
        skipped += quiet
        c += quiet
        if c >= checks:
            break
        opened, resolved = skipping.step(evidence[c], threshold, rows)
        seen += [(c, "open", j) for j in np.flatnonzero(opened)]
        seen += [(c, "resolve", j) for j in np.flatnonzero(resolved)]
        c += 1
    assert skipped > checks // 2  # mostly quiet: idle, cooling, or open in the band
    assert skipped_open > 100
    assert any(kind == "resolve" for _, kind, _ in expected)
    assert seen == expected
    for name, array in stepped.state_arrays().items():
        np.testing.assert_array_equal(skipping.state_arrays()[name], array)
