import numpy as np
import pytest

from pipeline.drift import DriftConfig, DriftDetector, Reference


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("calibration")  # one calibration for the whole module


def _setup():
    rng = np.random.default_rng(11)
    values = rng.standard_normal((3000, 4))
    values[:, 3] = rng.integers(0, 3, 3000)  # a G-test feature too
    reference = Reference.from_rows(values, ["a", "b", "c", "d"])
    config = DriftConfig(windows=(100, 400), target_ert=4000)
    stream = rng.standard_normal((9000, 4)).astype(np.float32)
    stream[:, 3] = rng.integers(0, 3, 9000)
    stream[4000:6000, 1] += 0.6  # an alert opens, updates and resolves around the snapshot
    stream[5000:5800, 3] = 2
    return reference, config, stream


def _feed(detector, rows, start, batch):
    events = []
    for i in range(0, rows.shape[0], batch):
        chunk = rows[i : i + batch]
        index = np.arange(start + i, start + i + chunk.shape[0])
        events += detector.update(chunk, offsets=index, timestamps_ms=index * 10)
    return events


@pytest.mark.parametrize("cut", [4500, 5507])
def test_restore_gives_identical_decisions(cache, cut: int) -> None:
    reference, config, stream = _setup()
    original = DriftDetector(reference, config, cache)
    _feed(original, stream[:cut], 0, 7)
    blob = original.snapshot()
    restored = DriftDetector.restore(reference, blob, cache)
    assert restored.rows_seen == original.rows_seen
    assert np.array_equal(restored.thresholds, original.thresholds)
    after_original = _feed(original, stream[cut:], cut, 23)
    after_restored = _feed(restored, stream[cut:], cut, 23)
    assert after_original == after_restored
    assert any(e.state == "RESOLVED" for e in after_original)
    assert original.stats() == restored.stats()


def test_restore_checks_the_reference(cache) -> None:
    reference, config, stream = _setup()
    detector = DriftDetector(reference, config, cache)
    detector.update(stream[:500])
    other = Reference.from_rows(reference.values[::-1], reference.feature_names)
    with pytest.raises(ValueError, match="reference"):
        DriftDetector.restore(other, detector.snapshot(), cache)
    with pytest.raises(ValueError, match="snapshot"):
        DriftDetector.restore(reference, b"not a snapshot", cache)


def test_reset_reference_starts_afresh(cache) -> None:
    reference, config, stream = _setup()
    detector = DriftDetector(reference, config, cache)
    detector.update(stream[:1000])
    new = Reference.from_rows(stream[:3000], reference.feature_names)
    detector.reset_reference(new)
    assert detector.rows_seen == 0 and detector.reference.version == new.version
    assert all(s.window == 0 for s in detector.stats())


def test_reference_version_and_round_trip(tmp_path) -> None:
    reference, _, _ = _setup()
    path = tmp_path / "ref.npz"
    reference.save(path)
    loaded = Reference.load(path)
    assert loaded.version == reference.version and len(reference.version) == 16
    assert np.array_equal(loaded.values, reference.values)
    changed = reference.values.copy()
    changed[0, 0] += 1
    assert Reference.from_rows(changed, reference.feature_names).version != reference.version
