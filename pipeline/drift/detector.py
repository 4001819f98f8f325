"""Streaming drift detector: sliding-window KS and G-tests against a fixed reference.

One `update()` per micro-batch: values are turned into codes (their place in the sorted
reference) with one vectorised searchsorted, appended to ring buffers, and every K rows the
windows are tested. Alerts are per feature, each with its own hysteresis; the threshold is
calibrated so that all features together raise one false OPEN per `target_ert` rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from pipeline.drift.alerts import (
    AlertEvent,
    AlertMachine,
    AlertState,
    DriftTest,
    FeatureEvidence,
    FeatureStat,
    Severity,
)
from pipeline.drift.calibration import Calibrator
from pipeline.drift.categorical import CategoricalIndex, GWindows, g_p_value
from pipeline.drift.config import DriftConfig
from pipeline.drift.dependence import CategoricalNull, dependent_columns
from pipeline.drift.ks import NumericIndex, ks_p_value
from pipeline.drift.reference import Reference
from pipeline.drift.snapshot import pack, unpack
from pipeline.drift.windows import CHUNK_ROWS, KSWindows, Ring, bucket_tops


class DriftDetector:
    """Detects drift of a model's input features away from its reference sample.

    The reference is never rolled forward by the detector: call `reset_reference()` after a
    retrain or once an alert has been acknowledged and a new baseline chosen.
    """

    def __init__(
        self,
        reference: Reference,
        config: DriftConfig | None = None,
        calibration_cache: Path | None = None,
        *,
        thresholds: np.ndarray | None = None,
        null_sample: np.ndarray | None = None,
        calibration_kind: tuple[str, ...] | None = None,
    ) -> None:
        """`null_sample`: stationary rows [m, d] in arrival order for block-bootstrap
        calibration (see DriftConfig.calibration); `calibration_kind` labels given thresholds."""
        self.config = config or DriftConfig()
        self._calibrator = Calibrator(calibration_cache)
        self._null_sample = None if null_sample is None else np.asarray(null_sample, np.float32)
        self._install(reference, thresholds, calibration_kind)

    # ---- public API -------------------------------------------------------------------------

    @property
    def reference(self) -> Reference:
        return self._reference

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._reference.feature_names

    @property
    def tests(self) -> tuple[DriftTest, ...]:
        return self._tests

    @property
    def thresholds(self) -> np.ndarray:
        """Alarm threshold on z per feature (shared by KS features; per feature for G)."""
        return self._threshold.copy()

    @property
    def rows_seen(self) -> int:
        return self._rows_seen

    @property
    def calibration(self) -> tuple[str, ...]:
        """How each feature's threshold was set: "iid" or "block-bootstrap(block=.., rows=..)"."""
        return self._kind

    def reset_reference(self, reference: Reference) -> None:
        """Adopt a new reference: windows, counters and alerts start afresh."""
        self._install(reference, None, None)

    def update(
        self,
        rows: np.ndarray,
        offsets: np.ndarray | None = None,
        timestamps_ms: np.ndarray | None = None,
    ) -> list[AlertEvent]:
        """Add a batch of rows [n, d] (float32); returns the alert transitions it caused.

        `offsets` and `timestamps_ms` (one per row) only label alerts with the offset and time
        range their window covers; without timestamps the arrival time is used.
        """
        values = np.asarray(rows, dtype=np.float32)
        if values.ndim == 1:
            values = values[None, :]
        count = values.shape[0]
        if values.ndim != 2 or values.shape[1] != self._d:
            raise ValueError(f"expected rows of {self._d} features, got shape {values.shape}")
        offsets = None if offsets is None else np.asarray(offsets, dtype=np.int64).reshape(count)
        if timestamps_ms is not None:
            timestamps_ms = np.asarray(timestamps_ms, dtype=np.int64).reshape(count)
        events: list[AlertEvent] = []
        for start in range(0, count, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, count)
            events += self._update_piece(
                values[start:stop],
                None if offsets is None else offsets[start:stop],
                None if timestamps_ms is None else timestamps_ms[start:stop],
            )
        return events

    def stats(self) -> list[FeatureStat]:
        """Exact current evidence per feature (recomputes every window; for status commands)."""
        z, stat = self._exact_at(self._rows_seen)
        best = self._best_window(z, stat)
        out = []
        for j, name in enumerate(self.feature_names):
            k = best[j]
            full = self._rows_seen >= self.config.windows[k]
            out.append(
                FeatureStat(
                    feature=name,
                    test=self._tests[j],
                    z=float(z[k, j]),
                    statistic=float(stat[k, j]),
                    window=self.config.windows[k] if full else 0,
                    threshold=float(self._threshold[j]),
                    state=AlertMachine.PHASE_NAMES[int(self._machine.phase[j])],
                    calibration=self._kind[j],
                    windows={
                        w: (float(z[i, j]), float(stat[i, j]))
                        for i, w in enumerate(self.config.windows)
                        if self._rows_seen >= w
                    },
                )
            )
        return out

    def snapshot(self) -> bytes:
        """Everything needed to continue exactly where this detector is, as bytes."""
        header = {
            "reference_version": self._reference.version,
            "config": self.config.to_dict(),
            "rows_seen": self._rows_seen,
            "since_check": self._since_check,
            "feature_names": list(self.feature_names),
            "calibration": list(self._kind),
        }
        arrays: dict[str, np.ndarray] = {"threshold": self._threshold}
        for name, ring in self._rings().items():
            columns, written = ring.state()
            arrays[f"ring_{name}"] = columns
            arrays[f"written_{name}"] = np.asarray(written, dtype=np.int64)
        for name, array in self._machine.state_arrays().items():
            arrays[f"machine_{name}"] = array
        arrays["last_z"] = self._last_z
        arrays["since_emit"] = self._since_emit
        arrays["peak"] = self._peak
        return pack(header, arrays)

    @classmethod
    def restore(
        cls,
        reference: Reference,
        blob: bytes,
        calibration_cache: Path | None = None,
        config: DriftConfig | None = None,
        null_sample: np.ndarray | None = None,
    ) -> DriftDetector:
        """A detector continuing from `snapshot()` bytes; the reference must be the same one.

        Thresholds come from the snapshot (no recalibration), unless `config` is given and its
        alarm settings differ from the snapshot's, in which case they are recalibrated.
        """
        header, arrays = unpack(blob)
        if header["reference_version"] != reference.version:
            raise ValueError(
                f"snapshot was taken against reference {header['reference_version']}, "
                f"not {reference.version}"
            )
        saved = DriftConfig.from_dict(header["config"])
        keep_thresholds = config is None or (
            config.alarm_key() == saved.alarm_key()
            and config.target_ert == saved.target_ert
            and (config.ks_floor, config.js_floor) == (saved.ks_floor, saved.js_floor)
            and config.calibration == saved.calibration
        )
        kind = header.get("calibration")
        detector = cls(
            reference,
            config or saved,
            calibration_cache,
            thresholds=arrays["threshold"] if keep_thresholds else None,
            null_sample=null_sample,
            calibration_kind=tuple(kind) if keep_thresholds and kind else None,
        )
        if max(detector.config.windows) != max(saved.windows):
            raise ValueError("the largest window changed: buffered rows cannot be reused")
        for name, ring in detector._rings().items():
            ring.restore(arrays[f"ring_{name}"], int(arrays[f"written_{name}"]))
        detector._machine.load_arrays(
            {k.removeprefix("machine_"): v for k, v in arrays.items() if k.startswith("machine_")}
        )
        detector._last_z = arrays["last_z"].astype(np.float64)
        detector._since_emit = arrays["since_emit"].astype(np.int64)
        detector._peak = arrays["peak"].astype(np.int8)
        detector._rows_seen = int(header["rows_seen"])
        detector._since_check = int(header["since_check"])
        return detector

    # ---- setup ------------------------------------------------------------------------------

    def _install(
        self,
        reference: Reference,
        thresholds: np.ndarray | None,
        kind: tuple[str, ...] | None,
    ) -> None:
        cfg = self.config
        self._reference = reference
        self._d = reference.n_features
        self._tests = reference.tests(cfg.categorical_max_distinct)
        is_ks = np.array([t is DriftTest.KS for t in self._tests], dtype=bool)
        self._num = np.flatnonzero(is_ks)
        self._cat = np.flatnonzero(~is_ks)
        self._all_numeric = self._cat.size == 0
        self._nindex = NumericIndex.build(reference.values[:, self._num])
        self._cindex = CategoricalIndex.build(reference.values[:, self._cat])
        self._ks = KSWindows(
            self._num.size,
            cfg.windows,
            reference.n_ref,
            self._nindex.distance,
            tops=bucket_tops(reference.n_ref, *self._nindex.rank_table(), self._num.size),
            check_every=cfg.check_every,
            rank_table=self._nindex.rank_table(),
        )
        self._g = GWindows(self._cindex, cfg.windows)
        room = cfg.w_max + CHUNK_ROWS
        self._values = Ring(self._d, room, np.float32, keep=cfg.w_max)
        # source offset, timestamp (ms)
        self._meta = Ring(2, room, np.int64, fill=-1, keep=cfg.w_max)
        self._floor = np.where(is_ks, cfg.ks_floor, cfg.js_floor)
        self._major = np.where(is_ks, cfg.ks_major, cfg.js_major)
        self._machine = AlertMachine(
            self._d, cfg.persistence, cfg.resolve_ratio, cfg.resolve_after, cfg.cooldown
        )
        self._last_z = np.zeros(self._d)  # z at the feature's last event
        self._since_emit = np.zeros(self._d, dtype=np.int64)
        self._peak = np.zeros(self._d, dtype=np.int8)  # 1 once the open alert has been MAJOR
        self._rows_seen = 0
        self._since_check = 0
        if thresholds is None:
            thresholds, kind = self._calibrate()
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.shape != (self._d,):
            raise ValueError("one threshold per feature expected")
        self._threshold = thresholds
        self._kind = tuple(kind) if kind is not None else ("given",) * self._d
        if len(self._kind) != self._d:
            raise ValueError("one calibration label per feature expected")

    def _ordered_rows(self) -> np.ndarray | None:
        """The ordered sample behind a block-bootstrap calibration, or None for iid."""
        mode = self.config.calibration
        if mode == "iid" or (mode == "auto" and self._null_sample is None):
            return None
        sample = self._reference.values if self._null_sample is None else self._null_sample
        if sample.ndim != 2 or sample.shape[1] != self._d:
            raise ValueError(
                f"null sample must have the reference's {self._d} features, got {sample.shape}"
            )
        return sample

    def _calibrate(self) -> tuple[np.ndarray, list[str]]:
        out = np.zeros(self._d)
        kind = ["iid"] * self._d
        sample = self._ordered_rows()
        if self._num.size:
            cal, n_ref = self._calibrator, self._reference.n_ref
            dependent, dependence = (
                (np.zeros(0, np.int64), None)
                if sample is None
                else dependent_columns(sample[:, self._num])
            )
            out[self._num] = cal.ks_threshold(self.config, n_ref, self._d)
            if dependence is not None:
                columns = self._num[dependent]
                out[columns] = cal.ks_threshold(self.config, n_ref, self._d, dependence)
                for j in columns:
                    kind[j] = dependence.label
        codes = None if sample is None or not self._cat.size else self._cindex.codes(
            sample[:, self._cat]
        )
        for i, j in enumerate(self._cat):
            # each categorical feature on its own: one in bursts keeps the others' iid threshold
            null = None if codes is None else CategoricalNull.from_codes(codes[:, i])
            out[j] = self._calibrator.g_threshold(
                self.config, self._cindex.ref_counts[i], self._d, null
            )
            if null is not None:
                kind[j] = null.label
        return out, kind

    def _rings(self) -> dict[str, Ring]:
        return {
            "ks": self._ks.ring,
            "g": self._g.ring,
            "values": self._values,
            "meta": self._meta,
        }

    # ---- per batch --------------------------------------------------------------------------

    def _push(
        self, values: np.ndarray, offsets: np.ndarray | None, timestamps: np.ndarray | None
    ) -> None:
        count = values.shape[0]
        if self._all_numeric:
            self._ks.push(self._nindex.codes(values).T)
        else:
            if self._num.size:
                self._ks.push(self._nindex.codes(values[:, self._num]).T)
            self._g.push(self._cindex.codes(values[:, self._cat]).T)
        self._values.push(values.T)
        meta = np.empty((2, count), dtype=np.int64)
        meta[0] = -1 if offsets is None else np.asarray(offsets, dtype=np.int64).reshape(count)
        if timestamps is None:
            meta[1] = int(time.time() * 1000)
        else:
            meta[1] = np.asarray(timestamps, dtype=np.int64).reshape(count)
        self._meta.push(meta)

    def _update_piece(
        self, values: np.ndarray, offsets: np.ndarray | None, timestamps: np.ndarray | None
    ) -> list[AlertEvent]:
        """Push up to CHUNK_ROWS rows, then run every check that falls among them, in order."""
        if not values.shape[0]:
            return []
        every = self.config.check_every
        before = self._rows_seen
        self._push(values, offsets, timestamps)
        self._rows_seen += values.shape[0]
        self._since_check = self._rows_seen % every
        ends = np.arange((before // every + 1) * every, self._rows_seen + 1, every)
        if not ends.size:
            return []
        level = self._decision_level()
        if ends.size == 1 and ends[0] == self._rows_seen:
            # one check at the newest row (small batches): the windows' lazy bounds suffice
            z, stat = self._evaluate(level)
            z, stat = z[None], stat[None]
        else:
            z, stat = self._checkpoints(ends, level)
        return self._run_checks(ends, z, stat, self._evidence(z, stat))

    def _decision_level(self) -> np.ndarray:
        """Per feature, the lowest z a check's decision can turn on, given the current phases.

        An open alert is judged against resolve_ratio x threshold (resolve or stay); any other
        feature only by whether it exceeds its threshold (a cooling one may turn idle and open
        inside the piece). A feature that opens inside a piece is refined to the lower level
        for the checks after it (`_refine_opened`).
        """
        active = self._machine.phase == AlertMachine.ACTIVE
        return np.where(active, self.config.resolve_ratio * self._threshold, self._threshold)

    def _evidence(self, z: np.ndarray, stat: np.ndarray) -> np.ndarray:
        """Per check and feature, the largest z of a window whose effect size clears the floor."""
        return np.where(stat >= self._floor[None, None, :], z, 0.0).max(axis=1)

    def _refine_opened(
        self, ends: np.ndarray, z: np.ndarray, stat: np.ndarray, opened: np.ndarray
    ) -> None:
        """Make z and stat exact at the resolve level for the features in mask `opened`.

        Their values at these checks were computed against the threshold (they were idle);
        now open, a value between resolve_ratio x threshold and the threshold decides too.
        """
        if self._all_numeric:
            self._ks.refine(ends, z, stat, self._decision_level(), np.flatnonzero(opened))
            return
        series = np.flatnonzero(opened[self._num])
        if not series.size:  # categorical values are exact everywhere
            return
        ks_z, ks_stat = z[:, :, self._num], stat[:, :, self._num]
        self._ks.refine(ends, ks_z, ks_stat, self._decision_level()[self._num], series)
        z[:, :, self._num], stat[:, :, self._num] = ks_z, ks_stat

    def _evaluate(self, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, effect size) per window and feature at the newest row; exact where z >= level."""
        if self._all_numeric:
            z, dist, _ = self._ks.evaluate(level)
            return z, dist
        n_w = len(self.config.windows)
        z = np.zeros((n_w, self._d))
        stat = np.zeros((n_w, self._d))
        if self._num.size:
            z[:, self._num], stat[:, self._num], _ = self._ks.evaluate(level[self._num])
        z[:, self._cat], stat[:, self._cat], _ = self._g.evaluate()
        return z, stat

    def _checkpoints(self, ends: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, effect size) per check, window and feature; exact wherever z could reach `level`."""
        if self._all_numeric:
            return self._ks.checkpoints(ends, level)
        z = np.zeros((ends.size, len(self.config.windows), self._d))
        stat = np.zeros_like(z)
        if self._num.size:
            z[:, :, self._num], stat[:, :, self._num] = self._ks.checkpoints(ends, level[self._num])
        z[:, :, self._cat], stat[:, :, self._cat] = self._g.checkpoints(ends)
        return z, stat

    def _exact_at(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact (z, effect size) per window and feature for the windows ending at row `end`."""
        if self._all_numeric:
            return self._ks.exact_at(end)
        n_w = len(self.config.windows)
        z = np.zeros((n_w, self._d))
        stat = np.zeros((n_w, self._d))
        if self._num.size:
            z[:, self._num], stat[:, self._num] = self._ks.exact_at(end)
        z[:, self._cat], stat[:, self._cat] = self._g.exact_at(end)
        return z, stat

    def _best_window(self, z: np.ndarray, stat: np.ndarray) -> np.ndarray:
        floored = np.where(stat >= self._floor, z, 0.0)
        best = floored.argmax(axis=0)
        none = floored.max(axis=0) <= 0  # nothing above the floor: report the raw maximum
        if none.any():
            best = np.where(none, z.argmax(axis=0), best)
        return best

    def _run_checks(
        self, ends: np.ndarray, z: np.ndarray, stat: np.ndarray, evidence: np.ndarray
    ) -> list[AlertEvent]:
        """Step the alert machine through the checks in order, as if rows came K at a time."""
        every = self.config.check_every
        machine = self._machine
        events: list[AlertEvent] = []
        stepped = 0  # checks accounted for in _since_emit
        c = 0
        while c < ends.size:
            # checks that only move counters (nothing opens, updates or resolves): jump them
            quiet = machine.quiet_checks(evidence[c:], self._threshold, every)
            if quiet:
                machine.skip(evidence[c : c + quiet], self._threshold, every)
                c += quiet
                if c >= ends.size:
                    break
            self._since_emit += every * (c + 1 - stepped)
            stepped = c + 1
            was_active = machine.phase == AlertMachine.ACTIVE
            events += self._check(int(ends[c]), z[c], stat[c], evidence[c])
            c += 1
            opened = (machine.phase == AlertMachine.ACTIVE) & ~was_active
            if c < ends.size and opened.any():
                self._refine_opened(ends[c:], z[c:], stat[c:], opened)
                evidence[c:] = self._evidence(z[c:], stat[c:])
        self._since_emit += every * (ends.size - stepped)
        return events

    def _check(
        self, end: int, z: np.ndarray, stat: np.ndarray, evidence: np.ndarray
    ) -> list[AlertEvent]:
        """One check at row `end`; z and stat are exact wherever a decision depends on them."""
        machine = self._machine
        active = machine.phase == AlertMachine.ACTIVE
        opened, resolved = machine.step(evidence, self._threshold, self.config.check_every)
        staying = active & ~resolved & (evidence > self._threshold)
        if not (opened.any() or resolved.any() or staying.any()):
            return []
        # over the threshold, the best window is exact (the others are bounds below it)
        best = self._best_window(z, stat)
        cols = np.arange(self._d)
        major = (stat[best, cols] >= self._major).astype(np.int8)
        updates = staying & (
            (evidence >= self.config.update_growth * self._last_z)
            | (self._since_emit >= self.config.update_every)
            | (major > self._peak)
        )
        emit = opened | resolved | updates
        if not emit.any():
            return []
        # events carry exact values for every feature (ranked list): recompute all windows
        z, stat = self._exact_at(end)
        best = self._best_window(z, stat)
        best_stat = stat[best, cols]
        major = (best_stat >= self._major).astype(np.int8)
        best_z = z[best, cols]
        ranking = np.argsort(-best_z, kind="stable")
        ranked = tuple(
            FeatureEvidence(self.feature_names[j], float(best_z[j]), float(best_stat[j]))
            for j in ranking
        )
        events = []
        for j in ranking:
            if not emit[j]:
                continue
            if resolved[j]:
                state, severity = AlertState.RESOLVED, int(self._peak[j])
                self._last_z[j] = 0.0
                self._peak[j] = 0
            else:
                state = AlertState.OPEN if opened[j] else AlertState.UPDATE
                self._peak[j] = major[j] if opened[j] else max(self._peak[j], major[j])
                severity = int(major[j])
                self._last_z[j] = evidence[j]
            self._since_emit[j] = 0
            events.append(self._event(end, j, int(best[j]), state, severity, z, stat, ranked))
        return events

    def _event(
        self,
        end: int,
        j: int,
        k: int,
        state: AlertState,
        severity: int,
        z: np.ndarray,
        stat: np.ndarray,
        ranked: tuple[FeatureEvidence, ...],
    ) -> AlertEvent:
        width = self.config.windows[k]
        n_ref = self._reference.n_ref
        test = self._tests[j]
        mean_shift = wasserstein = 0.0
        if test is DriftTest.KS:
            p_value = ks_p_value(float(stat[k, j]), n_ref, width)
            i = int(np.searchsorted(self._num, j))
            window = self._values.ending(end, width)[j].astype(np.float64)
            window = window[np.isfinite(window)]
            ref = self._nindex.sorted_ref[i].astype(np.float64)
            ref = ref[np.isfinite(ref)]
            if window.size and ref.size:
                mean_shift = float((window.mean() - self._nindex.mean[i]) / self._nindex.std[i])
                wasserstein = float(wasserstein_distance(window, ref))
        else:
            i = int(np.searchsorted(self._cat, j))
            counts = self._g.counts(width, end)[i]
            p_value = g_p_value(float(z[k, j]) ** 2, self._cindex.ref_counts[i], counts)
        offsets, times = self._meta.ending(end, width)
        known = offsets[offsets >= 0]
        return AlertEvent(
            reference_version=self._reference.version,
            feature=self.feature_names[j],
            state=state,
            severity=Severity.MAJOR if severity else Severity.MINOR,
            test=test,
            statistic=float(stat[k, j]),
            z=float(z[k, j]),
            threshold=float(self._threshold[j]),
            window=width,
            p_value=p_value,
            mean_shift=mean_shift,
            wasserstein=wasserstein,
            ranked_features=ranked,
            first_offset=int(known.min()) if known.size else -1,
            last_offset=int(known.max()) if known.size else -1,
            window_start_ms=int(times[0]),
            window_end_ms=int(times[-1]),
            rows_seen=end,
            calibration=self._kind[j],
            reference_rows=n_ref,
            target_ert=self.config.target_ert,
            check_every=self.config.check_every,
            windows=self.config.windows,
        )
