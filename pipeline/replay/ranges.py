"""What range to replay: `--from/--to` times (ISO-8601 or relative) or `--offsets P:START-END`.

Pure parsing and checking; `pipeline/kafka/ranges.py` turns a request into offsets on the
broker. Times are epoch milliseconds, ranges half-open: `[from, to)` and `[start, end)`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.replay.exceptions import ReplayError

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_OFFSETS = re.compile(r"^(\d+):(\d+)-(\d+)$")


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int


@dataclass(frozen=True)
class OffsetRange:
    partition: int
    start: int  # first offset replayed
    end: int  # one past the last

    def __len__(self) -> int:
        return max(0, self.end - self.start)


def parse_time(text: str, now_ms: int | None = None, flag: str = "--from") -> int:
    """Epoch ms of `text`: `now`, relative (`-10m`, `-2h`, `-1.5d`, `-500ms`) or ISO-8601."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    text = text.strip()
    if text == "now":
        return now_ms
    relative = _RELATIVE.match(text)
    if relative:
        return now_ms - int(float(relative[1]) * _UNIT_MS[relative[2]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{flag} {text!r} is not a time: give ISO-8601 (2026-12-01T13:00:00Z), "
            "a relative time (-10m, -2h, -1d) or now"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without an offset is UTC, as Kafka's are
    return int(moment.timestamp() * 1000)


def time_range(from_text: str, to_text: str | None, now_ms: int | None = None) -> TimeRange:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start = parse_time(from_text, now_ms, "--from")
    end = now_ms if to_text is None else parse_time(to_text, now_ms, "--to")
    if start > now_ms:
        raise ReplayError(f"--from {from_text!r} is in the future ({_iso(start)})")
    if end <= start:
        raise ReplayError(
            f"empty time range: --to ({_iso(end)}) is not after --from ({_iso(start)})"
        )
    return TimeRange(start, min(end, now_ms))


def offset_ranges(text: str) -> list[OffsetRange]:
    """`P:START-END,...` (END exclusive), each partition at most once."""
    ranges: dict[int, OffsetRange] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = _OFFSETS.match(part)
        if not match:
            raise ReplayError(
                f"--offsets {part!r}: expected PARTITION:START-END (END exclusive), e.g. 0:100-200"
            )
        partition, start, end = (int(g) for g in match.groups())
        if end <= start:
            raise ReplayError(f"--offsets {part!r}: empty range (END must be after START)")
        if partition in ranges:
            raise ReplayError(f"--offsets: partition {partition} given twice")
        ranges[partition] = OffsetRange(partition, start, end)
    if not ranges:
        raise ReplayError(f"--offsets {text!r}: no range given")
    return [ranges[p] for p in sorted(ranges)]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
