"""The submit body's JSON parsing: orjson where it can, json.loads for the rest, so the bodies
accepted and the reasons for refusing one are json.loads's."""

from __future__ import annotations

import json

import pytest

from pipeline.gateway.app import _parse_json

BODIES = [
    b'{"amount": 12.5, "card_id": "c-1"}',
    b'[{"a": 1}, {"a": 2}]',
    b'{"amount": NaN}',  # json.loads takes NaN: the intake refuses it, per field
    b'{"amount": -Infinity}',
    b'{"big": 123456789012345678901234567890}',  # over 64 bits: orjson would say a float
    b'{"edge": [18446744073709551615, 18446744073709551616, -9223372036854775809]}',
    b'{"s": "\\ud800"}',  # a lone surrogate
    b'{"a": 1, "a": 2}',  # the last wins, as in json.loads
    '{"text": "caf\u00e9 \u2603"}'.encode(),
    b"1e400",
]
MALFORMED = [b"{", b"", b"not json", b'{"a": 1,}', b"\xff\xfe{}", b'{"a": 1} x']


@pytest.mark.parametrize("raw", BODIES)
def test_what_json_loads_accepts_is_parsed_to_the_same_values(raw):
    got, want = _parse_json(raw), json.loads(raw)
    assert repr(got) == repr(want)  # repr: NaN equals nothing, not even itself


@pytest.mark.parametrize("raw", MALFORMED)
def test_a_malformed_body_gets_json_loads_reason(raw):
    with pytest.raises((ValueError, UnicodeDecodeError)) as ours:
        _parse_json(raw)
    with pytest.raises((ValueError, UnicodeDecodeError)) as theirs:
        json.loads(raw)
    assert str(ours.value) == str(theirs.value)
