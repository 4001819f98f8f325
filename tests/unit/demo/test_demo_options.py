"""Flag validation of `inferstream demo`: a bad flag is one line and exit 2, before any work."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.demo.run import (
    DEFAULT_RATE,
    DEMO_APP_ID,
    DEMO_NAMESPACE,
    DemoOptions,
    demo_environment,
    parse_options,
)
from pipeline.streams.fraud.generator import DRIFTABLE_FIELDS


def _parse(**flags: str) -> DemoOptions:
    values = {"seconds": "60", "rate": "2000", "seed": "7", "drift_feature": "amount"}
    values.update(drift_shift="1.0")
    values.update(flags)
    return parse_options(**values)


def test_defaults_parse() -> None:
    assert _parse() == DemoOptions(
        seconds=60.0, rate=2000.0, seed=7, drift_feature="amount", drift_shift=1.0
    )
    assert DemoOptions().rate == DEFAULT_RATE == 2000.0


@pytest.mark.parametrize("feature", DRIFTABLE_FIELDS)
def test_every_drift_feature_of_the_generator_is_accepted(feature: str) -> None:
    assert _parse(drift_feature=feature).drift_feature == feature


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"rate": "0"}, "--rate"),
        ({"rate": "-5"}, "--rate"),
        ({"rate": "nan"}, "--rate"),
        ({"rate": "inf"}, "--rate"),
        ({"rate": "1e9"}, "--rate"),
        ({"rate": "fast"}, "--rate"),
        ({"seconds": "0"}, "--seconds"),
        ({"seconds": "-1"}, "--seconds"),
        ({"seconds": "nan"}, "--seconds"),
        ({"seconds": "inf"}, "--seconds"),
        ({"drift_shift": "nan"}, "--drift-shift"),
        ({"drift_shift": "inf"}, "--drift-shift"),
        ({"drift_shift": "x"}, "--drift-shift"),
        ({"drift_feature": "merchant_category"}, "--drift-feature"),
        ({"drift_feature": "AMOUNT"}, "--drift-feature"),
        ({"seed": "1.5"}, "--seed"),
        ({"seed": "seven"}, "--seed"),
    ],
)
def test_bad_flags_are_rejected_naming_the_flag(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        _parse(**flags)
    assert "\n" not in str(info.value)


def test_zero_shift_and_negative_seed_are_fine() -> None:
    options = _parse(drift_shift="0", seed="-3")
    assert options.drift_shift == 0.0 and options.seed == -3


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--rate", "0"],
        ["demo", "--seconds", "-2"],
        ["demo", "--drift-shift", "nan"],
        ["demo", "--drift-feature", "nope"],
        ["demo", "--seed", "x"],
    ],
)
def test_cli_exits_2_with_one_line_before_any_work(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.cli.demo_cmd as demo_cmd

    def no_stack(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack was touched before the flags were checked")

    monkeypatch.setattr(demo_cmd, "ensure_stack", no_stack)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("inferstream: error: --")


def test_demo_environment_defaults_to_its_own_namespace_and_groups() -> None:
    env: dict[str, str] = {}
    demo_environment(env)
    assert env == {
        "INFERSTREAM_TOPIC_NAMESPACE": DEMO_NAMESPACE,
        "INFERSTREAM_APP_ID": DEMO_APP_ID,
    }
    assert DEMO_NAMESPACE != "" and DEMO_APP_ID != "inferstream"


def test_demo_environment_keeps_what_the_user_set() -> None:
    env = {"INFERSTREAM_TOPIC_NAMESPACE": "mine.", "INFERSTREAM_APP_ID": "me"}
    demo_environment(env)
    assert env == {"INFERSTREAM_TOPIC_NAMESPACE": "mine.", "INFERSTREAM_APP_ID": "me"}
