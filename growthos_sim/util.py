"""Small shared helpers of the simulator: time formatting, ids, JSON."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


_DAYS: dict[int, str] = {}


def _day(day: int) -> str:
    d = _DAYS.get(day)
    if d is None:
        d = (_EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%d")
        _DAYS[day] = d
    return d


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as the API does: ISO 8601 UTC, millisecond precision, `Z`.

    Hot path of generation (millions of calls): the date part is cached per day.
    """
    day, rem = divmod(ms, 86_400_000)
    sec, milli = divmod(rem, 1000)
    h, sec = divmod(sec, 3600)
    m, sec = divmod(sec, 60)
    return f"{_day(day)}T{h:02d}:{m:02d}:{sec:02d}.{milli:03d}Z"


def iso_date(ms: int) -> str:
    """Format epoch milliseconds as a `YYYY-MM-DD` date (UTC)."""
    return _day(ms // 86_400_000)


def parse_ms(value: str) -> int:
    """Parse an ISO 8601 date or date-time (any offset; naive means UTC) into epoch ms.

    Raises ValueError on anything else, which handlers turn into a 400.
    """
    v = value.strip()
    if len(v) == 10:
        d = dt.datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    else:
        d = dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.timezone.utc)
    return int((d - _EPOCH).total_seconds() * 1000)


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = [a + b for a in _B32 for b in _B32]  # 10 bits -> 2 characters


def new_id(rng: random.Random, prefix: str) -> str:
    """A prefixed id of 16 lowercase base32 characters, deterministic from `rng`."""
    x = rng.getrandbits(80)
    p = _PAIRS
    return (prefix + p[x >> 70] + p[(x >> 60) & 1023] + p[(x >> 50) & 1023] + p[(x >> 40) & 1023]
            + p[(x >> 30) & 1023] + p[(x >> 20) & 1023] + p[(x >> 10) & 1023] + p[x & 1023])


def dumps(obj: Any) -> bytes:
    """Serialize to compact JSON bytes (orjson: the server's hot path)."""
    return orjson.dumps(obj)


def freeze(obj: Any) -> bytes:
    """JSON bytes sized exactly, for storing: orjson's own result keeps a 4 KB buffer."""
    return bytes(memoryview(orjson.dumps(obj)))


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes."""
    return orjson.loads(data)


DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def parse_duration_ms(text: str) -> int:
    """Parse `90s`, `15m`, `6h`, `1d`, `2w` into milliseconds."""
    units = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit():
        raise ValueError(f"bad duration {text!r}: use a number and one of s, m, h, d, w (e.g. '1d')")
    return int(t[:-1]) * units[t[-1]]
