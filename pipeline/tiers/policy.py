"""The routing policy of a stream: `<models_dir>/<model>/routing.json`, validated, hot-reloaded.

    {
      "primary": "1.0.0",                          # the version that serves
      "cascade": {                                 # optional: small model first
        "small": "1.0.0-small.1",
        "large": "1.0.0",                          # optional, default: primary
        "bands": [[0.012, 0.93]]                   # small-model scores escalated to the large
      },                                           # model (inclusive, disjoint, within [0, 1])
      "shadow": ["1.0.0-candidate.1"],             # optional: scored after delivery, off path
      "canary": {"version": "...", "share_percent": 10},  # optional (validated)
      "fallback": "1.0.0-small.1"                  # optional, default: the cascade's small
    }                                              # model; none without a cascade

The fallback version serves a batch whose serving call failed for good or whose breaker is
open (route `fallback-breaker`), and the requests the gateway marked degraded because their
tenant is over its cost budget (route `fallback-budget`); both are flagged `degraded`.

No file: today's behaviour (the highest version serves, no tiers). A file that is there but
invalid is refused at load with the reason (PolicyError); at hot reload the previous policy stays
and the reason is logged once per bad file version (`PolicyWatcher`).

Checked: every named version exists under the model directory and has a readable manifest;
each one's preprocessing version is the stream's and its feature names are the primary's (the
rows fed to it mean the same things); bands are pairs lo <= hi inside [0, 1] that do not
overlap; a canary share is a number in [0, 100]; no unknown keys (a typo would silently do
nothing).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.models.exceptions import ModelError
from pipeline.models.manifest import ModelManifest, available_versions
from pipeline.tiers.exceptions import PolicyError

log = logging.getLogger("inferstream.tiers")

POLICY_FILE = "routing.json"
_TOP_KEYS = {"primary", "cascade", "shadow", "canary", "fallback", "comment", "calibration"}
_CASCADE_KEYS = {"small", "large", "bands", "calibration", "comment"}
_CANARY_KEYS = {"version", "share_percent", "comment", "gate"}


@dataclass(frozen=True)
class Cascade:
    small: str
    large: str
    bands: tuple[tuple[float, float], ...]
    calibration: Mapping[str, Any] = field(default_factory=dict)

    def band_share(self, scores: Any) -> float:
        """Share of `scores` inside the bands (what a batch's escalated share should be)."""
        import numpy as np

        values = np.asarray(scores, dtype=np.float64)
        return float(escalated_mask(values, self.bands).mean()) if len(values) else 0.0


@dataclass(frozen=True)
class Canary:
    version: str
    share_percent: float
    gate: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingPolicy:
    primary: str
    cascade: Cascade | None = None
    shadow: tuple[str, ...] = ()
    canary: Canary | None = None
    source: str = ""
    digest: str = ""  # first 12 hex digits of the file's sha256: which policy a record ran under
    fallback: str | None = None  # as written; `fallback_version` applies the default

    @property
    def fallback_version(self) -> str | None:
        """The version serving degraded requests: the file's `fallback`, else the cascade's
        small model, else none."""
        if self.fallback is not None:
            return self.fallback
        return self.cascade.small if self.cascade else None

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the policy names, the primary first, each once."""
        named = [self.primary]
        if self.cascade:
            named += [self.cascade.small, self.cascade.large]
        named += list(self.shadow)
        if self.canary:
            named.append(self.canary.version)
        if self.fallback:
            named.append(self.fallback)
        return tuple(dict.fromkeys(named))

    @property
    def serving(self) -> tuple[str, ...]:
        """Versions that score on the serving path (shadows do not)."""
        named = [self.cascade.small, self.cascade.large] if self.cascade else [self.primary]
        if self.canary:
            named.append(self.canary.version)
        return tuple(dict.fromkeys(named))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"primary": self.primary}
        if self.cascade:
            out["cascade"] = {
                "small": self.cascade.small,
                "large": self.cascade.large,
                "bands": [list(b) for b in self.cascade.bands],
            }
            if self.cascade.calibration:
                out["cascade"]["calibration"] = dict(self.cascade.calibration)
        if self.shadow:
            out["shadow"] = list(self.shadow)
        if self.canary:
            out["canary"] = {
                "version": self.canary.version,
                "share_percent": self.canary.share_percent,
            }
            if self.canary.gate:
                out["canary"]["gate"] = dict(self.canary.gate)
        if self.fallback:
            out["fallback"] = self.fallback
        return out


def escalated_mask(scores: Any, bands: Sequence[tuple[float, float]]) -> Any:
    """Rows whose score lies in one of the (inclusive) bands."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    mask = np.zeros(len(values), dtype=bool)
    for lo, hi in bands:
        mask |= (values >= lo) & (values <= hi)
    return mask


def policy_path(models_dir: Path, model_name: str) -> Path:
    return Path(models_dir) / model_name / POLICY_FILE


def parse_policy(
    data: Any,
    models_dir: Path,
    model_name: str,
    preprocessing_version: str | None = None,
    source: str = POLICY_FILE,
) -> RoutingPolicy:
    """A validated RoutingPolicy from the decoded JSON, or PolicyError naming source and reason."""

    def fail(reason: str) -> PolicyError:
        return PolicyError(f"routing policy {source}: {reason}")

    if not isinstance(data, Mapping):
        raise fail("expected a JSON object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
    available = available_versions(models_dir, model_name)

    def version(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise fail(f"{where} must be a version string, got {value!r}")
        if value not in available:
            raise fail(
                f"{where} names version {value!r}, which model {model_name!r} does not have "
                f"under {models_dir}; available: {', '.join(available) or 'none'}"
            )
        return value

    primary = version(data.get("primary"), "primary")
    cascade = _cascade(data.get("cascade"), primary, version, fail)
    shadow_raw = data.get("shadow", [])
    if isinstance(shadow_raw, str):
        shadow_raw = [shadow_raw]
    if not isinstance(shadow_raw, list):
        raise fail(f"shadow must be a list of versions, got {shadow_raw!r}")
    shadow = tuple(version(v, f"shadow[{i}]") for i, v in enumerate(shadow_raw))
    if len(set(shadow)) != len(shadow):
        raise fail(f"shadow lists a version twice: {list(shadow)}")
    canary = _canary(data.get("canary"), primary, version, fail)
    fallback = None
    if "fallback" in data:
        fallback = version(data["fallback"], "fallback")
        serving = cascade.large if cascade else primary
        if fallback == serving:
            raise fail(f"fallback {fallback!r} is the version it stands in for; name another")
    raw = json.dumps(data, sort_keys=True).encode()
    policy = RoutingPolicy(
        primary, cascade, shadow, canary, source, hashlib.sha256(raw).hexdigest()[:12],
        fallback,
    )  # fmt: skip
    _check_manifests(policy, models_dir, model_name, preprocessing_version, fail)
    return policy


def _cascade(
    raw: Any, primary: str, version: Callable[[Any, str], str], fail: Callable[[str], Exception]
) -> Cascade | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail(f"cascade must be an object, got {raw!r}")
    unknown = sorted(set(raw) - _CASCADE_KEYS)
    if unknown:
        raise fail(f"cascade has unknown field(s) {', '.join(unknown)}")
    small = version(raw.get("small"), "cascade.small")
    large = version(raw.get("large", primary), "cascade.large")
    if small == large:
        raise fail(f"cascade.small and cascade.large are both {small!r}")
    bands_raw = raw.get("bands")
    if not isinstance(bands_raw, list) or not bands_raw:
        raise fail("cascade.bands must be a non-empty list of [low, high] score pairs")
    bands = []
    for i, band in enumerate(bands_raw):
        ok = (
            isinstance(band, list)
            and len(band) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in band)
        )
        if not ok:
            raise fail(f"cascade.bands[{i}] must be a [low, high] pair of numbers, got {band!r}")
        lo, hi = float(band[0]), float(band[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 1.0):
            raise fail(f"cascade.bands[{i}] = {band!r} is impossible: needs 0 <= low <= high <= 1")
        bands.append((lo, hi))
    ordered = sorted(bands)
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(ordered):
        if lo2 <= hi1:
            raise fail(f"cascade bands [{lo1:g}, {hi1:g}] and [{lo2:g}, {hi2:g}] overlap")
    calibration = raw.get("calibration", {})
    if not isinstance(calibration, Mapping):
        raise fail("cascade.calibration must be an object")
    return Cascade(small, large, tuple(ordered), dict(calibration))


def _canary(
    raw: Any, primary: str, version: Callable[[Any, str], str], fail: Callable[[str], Exception]
) -> Canary | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail(f"canary must be an object, got {raw!r}")
    unknown = sorted(set(raw) - _CANARY_KEYS)
    if unknown:
        raise fail(f"canary has unknown field(s) {', '.join(unknown)}")
    candidate = version(raw.get("version"), "canary.version")
    if candidate == primary:
        raise fail(f"canary.version {candidate!r} is the primary; a canary needs another version")
    share = raw.get("share_percent")
    if not isinstance(share, int | float) or isinstance(share, bool) or not math.isfinite(share):
        raise fail(f"canary.share_percent must be a number in [0, 100], got {share!r}")
    if not 0.0 <= float(share) <= 100.0:
        raise fail(f"canary.share_percent {share!r} is outside 0-100 %")
    gate = raw.get("gate", {})
    if not isinstance(gate, Mapping):
        raise fail("canary.gate must be an object")
    return Canary(candidate, float(share), dict(gate))


def _check_manifests(
    policy: RoutingPolicy,
    models_dir: Path,
    model_name: str,
    preprocessing_version: str | None,
    fail: Callable[[str], Exception],
) -> None:
    manifests: dict[str, ModelManifest] = {}
    for v in policy.versions:
        try:
            manifests[v] = ModelManifest.load(Path(models_dir) / model_name / v)
        except ModelError as exc:
            raise fail(f"version {v!r}: {exc}") from None
    primary = manifests[policy.primary]
    expected = preprocessing_version or primary.preprocessing_version
    for v, manifest in manifests.items():
        if manifest.preprocessing_version != expected:
            raise fail(
                f"version {v!r} was built for preprocessing {manifest.preprocessing_version!r}, "
                f"the stream computes {expected!r}"
            )
        if manifest.feature_names != primary.feature_names:
            raise fail(
                f"version {v!r} takes features {list(manifest.feature_names)}, the primary "
                f"{policy.primary!r} takes {list(primary.feature_names)}"
            )


def load_policy(
    models_dir: Path, model_name: str, preprocessing_version: str | None = None
) -> RoutingPolicy | None:
    """The stream's policy, None when it has no routing.json; PolicyError when it is invalid."""
    path = policy_path(models_dir, model_name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"routing policy {path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"routing policy {path}: not JSON: {exc}") from None
    return parse_policy(data, models_dir, model_name, preprocessing_version, source=str(path))


def write_policy(models_dir: Path, model_name: str, policy: RoutingPolicy) -> Path:
    """Write atomically (temp file + rename), so a watcher never reads half a file."""
    path = policy_path(models_dir, model_name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(policy.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class PolicyWatcher:
    """The current policy, re-read when routing.json's mtime or size changes (checked at most
    every `interval_s`). A bad new file keeps the previous policy and logs why, once.

    `on_change(policy)` runs for each accepted policy (None: the file was removed), and may raise
    (e.g. a model of the new policy does not load): the new policy is then refused like an
    invalid file.
    """

    def __init__(
        self,
        models_dir: Path,
        model_name: str,
        preprocessing_version: str | None = None,
        interval_s: float = 1.0,
        on_change: Callable[[RoutingPolicy | None], None] | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.model_name = model_name
        self.preprocessing_version = preprocessing_version
        self.interval_s = interval_s
        self.on_change = on_change
        self.path = policy_path(self.models_dir, model_name)
        self.reloads = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._stat()
        self.policy = load_policy(self.models_dir, model_name, preprocessing_version)
        if on_change is not None:
            on_change(self.policy)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> RoutingPolicy | None:
        now = time.monotonic()
        if now - self._checked < self.interval_s:
            return self.policy
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self.policy

    def check(self) -> RoutingPolicy | None:
        """Re-read now if the file changed (ignores the interval)."""
        self._checked = -math.inf
        return self.current()

    def _reload(self) -> None:
        try:
            policy = load_policy(self.models_dir, self.model_name, self.preprocessing_version)
            if self.on_change is not None:
                self.on_change(policy)
        except Exception as exc:  # any failure keeps the previous policy
            self.rejected += 1
            self.last_error = str(exc)
            kept = self.policy.digest if self.policy else "none (highest version serves)"
            log.error("routing policy reload refused, keeping policy %s: %s", kept, exc)
            return
        self.policy, self.last_error = policy, None
        self.reloads += 1
        log.warning(
            "routing policy reloaded from %s: %s",
            self.path,
            json.dumps(policy.to_dict()) if policy else "removed (highest version serves)",
        )
