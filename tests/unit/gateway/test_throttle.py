"""A tenant's rate refusal is held locally exactly as long as Redis would refuse one more
request, so a flooding tenant's requests are refused without parsing or a round trip."""

from __future__ import annotations

import time

from pipeline.gateway.app import Gateway
from pipeline.gateway.limits import Admission


def _gateway() -> Gateway:
    return Gateway(None, {}, None, None, None, None, None)  # type: ignore[arg-type]


def test_a_refusal_is_held_for_the_time_one_request_needs():
    gw = _gateway()
    # 3 requests at 0.5/s were refused for 5 s: one request fits 2 intervals (4 s) earlier
    refusal = Admission("rate", "acme", rps=0.5, burst=1, retry_after_ms=5000)
    gw.throttle("acme", refusal, count=3)
    held = gw.throttled("acme")
    assert held is not None and held.outcome == "rate"
    assert 900 < held.retry_after_ms <= 1000
    assert gw.throttled("globex") is None


def test_a_refusal_a_single_request_would_pass_is_not_held_and_one_expires():
    gw = _gateway()
    gw.throttle("acme", Admission("rate", "acme", rps=0.5, retry_after_ms=3000), count=3)
    assert gw.throttled("acme") is None  # one request fits at once (3000 - 2 x 2000 < 0)
    gw.throttle("acme", Admission("rate", "acme", rps=100, retry_after_ms=30), count=1)
    assert gw.throttled("acme") is not None
    time.sleep(0.05)
    assert gw.throttled("acme") is None and "acme" not in gw._throttled
