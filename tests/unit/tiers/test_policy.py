"""Routing policies: what is refused at load (with the reason), and hot reload keeping the last
good policy."""

from __future__ import annotations

import os
import shutil

import pytest

from pipeline.tiers.exceptions import PolicyError
from pipeline.tiers.policy import PolicyWatcher, load_policy

from .conftest import CANDIDATE, LARGE, SMALL, write

CASCADE = {"small": SMALL, "large": LARGE, "bands": [[0.01, 0.9]]}


def test_no_file_is_no_policy(models_dir):
    assert load_policy(models_dir, "fraud") is None


def test_a_full_policy_loads(models_dir):
    write(models_dir, {"primary": LARGE, "cascade": CASCADE, "shadow": [CANDIDATE],
                       "canary": {"version": CANDIDATE, "share_percent": 10}})  # fmt: skip
    policy = load_policy(models_dir, "fraud", "fraud-features/1")
    assert policy.primary == LARGE
    assert policy.cascade.bands == ((0.01, 0.9),)
    assert policy.shadow == (CANDIDATE,)
    assert policy.canary.share_percent == 10.0
    assert policy.versions == (LARGE, SMALL, CANDIDATE)
    assert len(policy.digest) == 12


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({"primary": "7.7.7"}, "primary names version '7.7.7', which model 'fraud' does not have"),
        ({"primary": LARGE, "shadow": ["2.0.0"]}, "shadow[0] names version '2.0.0'"),
        ({"primary": LARGE, "cascade": {**CASCADE, "small": "0.0.1"}}, "cascade.small names"),
        (
            {"primary": LARGE, "cascade": {**CASCADE, "bands": [[0.01, 0.5], [0.4, 0.9]]}},
            "cascade bands [0.01, 0.5] and [0.4, 0.9] overlap",
        ),
        (
            {"primary": LARGE, "cascade": {**CASCADE, "bands": [[0.8, 0.2]]}},
            "cascade.bands[0] = [0.8, 0.2] is impossible: needs 0 <= low <= high <= 1",
        ),
        ({"primary": LARGE, "cascade": {**CASCADE, "bands": [[-0.1, 0.2]]}}, "is impossible"),
        ({"primary": LARGE, "cascade": {**CASCADE, "bands": [[0.1, 1.5]]}}, "is impossible"),
        ({"primary": LARGE, "cascade": {**CASCADE, "bands": []}}, "non-empty list"),
        ({"primary": LARGE, "cascade": {**CASCADE, "small": LARGE}}, "are both '1.0.0'"),
        (
            {"primary": LARGE, "canary": {"version": CANDIDATE, "share_percent": 120}},
            "canary.share_percent 120 is outside 0-100 %",
        ),
        (
            {"primary": LARGE, "canary": {"version": CANDIDATE, "share_percent": -5}},
            "outside 0-100 %",
        ),
        ({"primary": LARGE, "canary": {"version": LARGE, "share_percent": 5}}, "is the primary"),
        ({"primary": LARGE, "cascad": CASCADE}, "unknown field(s) cascad"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(models_dir, policy, reason):
    write(models_dir, policy)
    with pytest.raises(PolicyError) as err:
        load_policy(models_dir, "fraud", "fraud-features/1")
    assert reason in str(err.value)
    assert "routing.json" in str(err.value)


def test_a_model_built_for_other_preprocessing_is_refused(models_dir):
    write(models_dir, {"primary": LARGE, "shadow": [CANDIDATE]})
    with pytest.raises(PolicyError, match="built for preprocessing 'fraud-features/1', the "
                                          "stream computes 'fraud-features/2'"):  # fmt: skip
        load_policy(models_dir, "fraud", "fraud-features/2")


def test_a_version_with_other_features_is_refused(models_dir):
    odd = models_dir / "fraud" / "1.0.0-odd.1"
    shutil.copytree(models_dir / "fraud" / SMALL, odd)
    manifest = (odd / "manifest.json").read_text().replace('"risky_mcc"', '"risky_merchant"')
    (odd / "manifest.json").write_text(manifest)
    write(models_dir, {"primary": LARGE, "shadow": ["1.0.0-odd.1"]})
    with pytest.raises(PolicyError, match=r"takes features .*risky_merchant"):
        load_policy(models_dir, "fraud", "fraud-features/1")


def test_not_json_is_refused(models_dir):
    write(models_dir, "{primary: 1.0.0")
    with pytest.raises(PolicyError, match="not JSON"):
        load_policy(models_dir, "fraud")


def _touch(path, step):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + step * 1_000_000_000))


def test_hot_reload_takes_a_good_file_and_keeps_the_last_good_one_on_a_bad_file(models_dir, caplog):
    path = write(models_dir, {"primary": LARGE})
    seen = []
    watcher = PolicyWatcher(models_dir, "fraud", "fraud-features/1", 0.0, seen.append)
    assert watcher.policy.primary == LARGE and watcher.policy.cascade is None

    write(models_dir, {"primary": LARGE, "cascade": CASCADE})
    _touch(path, 1)
    assert watcher.current().cascade.small == SMALL
    assert watcher.reloads == 1

    good = watcher.policy
    write(models_dir, {"primary": LARGE, "cascade": {**CASCADE, "bands": [[0.9, 0.1]]}})
    _touch(path, 2)
    with caplog.at_level("ERROR", logger="inferstream.tiers"):
        assert watcher.current() is good  # kept
    assert watcher.rejected == 1
    assert "is impossible" in watcher.last_error
    assert "routing policy reload refused, keeping policy " + good.digest in caplog.text
    assert watcher.current() is good  # unchanged file: not re-read, not logged again
    assert watcher.rejected == 1

    write(models_dir, {"primary": SMALL})
    _touch(path, 3)
    assert watcher.current().primary == SMALL
    assert [p.primary for p in seen] == [LARGE, LARGE, SMALL]


def test_a_policy_refused_by_the_change_hook_is_not_taken(models_dir):
    path = write(models_dir, {"primary": LARGE})

    def hook(policy):
        if policy and policy.shadow:
            raise ValueError("model does not load")

    watcher = PolicyWatcher(models_dir, "fraud", None, 0.0, hook)
    write(models_dir, {"primary": LARGE, "shadow": [CANDIDATE]})
    _touch(path, 1)
    assert watcher.current().shadow == ()
    assert watcher.last_error == "model does not load"
