"""The coalescer's group commit: small submissions that arrive while a batch waits for Redis
are held and go together, in one check and one round trip, once it comes back; each still
gets its own answer. The stream's real intake; Redis down (the admission answers at once)."""

from __future__ import annotations

import asyncio

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.gateway import app
from pipeline.gateway.intake import StreamIntake
from pipeline.gateway.limits import Limits
from pipeline.redis.client import DegradingRedis

DOWN = DegradingRedis("redis://127.0.0.1:1/0", retry_after_s=60, timeout_s=0.05)


def _request(i: int, **changes) -> dict:
    base = {
        "card_id": f"card-{i}", "account_id": "acct-1", "amount": 12.5 + i, "currency": "EUR",
        "merchant_category": "5411", "merchant_country": "DE", "card_country": "DE",
        "channel": "POS", "event_time": 1736121610932, "card_txn_count_1h": 1,
        "card_avg_amount_30d": 30.0, "seconds_since_last_txn": 3600.0,
    }  # fmt: skip
    return {**base, **changes}


def test_submissions_arriving_while_a_batch_waits_for_redis_go_together_after_it():
    settings = Settings()
    intake = StreamIntake(settings, get_plugin("fraud"), registry_from_settings(settings), DOWN)
    gw = app.Gateway(settings, {"fraud": intake}, DOWN, Limits(DOWN, "p:"), None, None, None)  # type: ignore[arg-type]
    batches: list[int] = []
    first_back = asyncio.Event()

    async def in_pool(fn, *args):  # the real lookup_and_admit, the first one held back
        batches.append(len(args[2]))
        if len(batches) == 1:
            await first_back.wait()
        return fn(*args)

    gw.in_pool = in_pool  # type: ignore[method-assign]

    async def run() -> list:
        coalescer = gw.coalescer("fraud")
        ticket = lambda i, **c: app.Ticket([_request(i, **c)], "acme", "d", "", "")  # noqa: E731
        first = asyncio.ensure_future(coalescer.submit(ticket(0)))
        await asyncio.sleep(0.05)  # its batch waits for Redis
        held = [asyncio.ensure_future(coalescer.submit(ticket(i))) for i in range(1, 6)]
        bad = asyncio.ensure_future(coalescer.submit(ticket(9, amount="12")))
        await asyncio.sleep(0.05)
        assert batches == [1]  # nothing else went to Redis meanwhile
        first_back.set()
        return await asyncio.gather(first, *held, bad)

    answers = asyncio.run(run())
    assert batches == [1, 5]  # the held valid ones in one round trip
    ids = [checked.records[0]["request_id"] for checked, _, _ in answers[:6]]
    assert len(set(ids)) == 6 and all(rows is None for _, rows, _ in answers[:6])  # Redis down
    bad_checked, _, _ = answers[6]
    assert [(p.index, p.field) for p in bad_checked.problems] == [(0, "amount")]
