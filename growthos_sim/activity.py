"""A day of activity sent through the local server's Ingest API, for the demo, tests and
benchmarks: identified and anonymous users, page views and events, anonymous visitors who log
in (identity stitching), a few aliases, duplicate deliveries, and late events of several ages.

`send_day(base_url, write_key)` returns exactly what it sent, so a caller can check what the
Management API (and a warehouse) should show once the messages are processed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from .api.ingest import DEFAULT_WRITE_KEY
from .ingest import MAX_BATCH_ITEMS, MAX_BODY_BYTES
from .util import iso_ms, parse_duration_ms, parse_ms

DEFAULT_LATE = {"3s": 4, "1h": 4, "1d": 3, "5d": 2}
_EVENTS = ("login", "feature_used", "signup", "trial_started", "purchase", "invite_sent")
_PAGES = ("/", "/pricing", "/docs", "/blog", "/dashboard", "/settings")


@dataclass
class SentDay:
    """What `send_day` sent. `events` counts the events the server will store (accepted,
    not duplicates); `late` the ones among them with a past `timestamp`, by age."""

    now: str
    requests: int = 0
    events: int = 0
    late: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    stitched: int = 0  # anonymous visitors identified (identify with both ids)
    aliases: int = 0
    message_ids: list[str] = field(default_factory=list)
    late_message_ids: list[str] = field(default_factory=list)  # the late ones among them
    user_ids: list[str] = field(default_factory=list)


def _root(base_url: str) -> str:
    return base_url[: -len("/v1")] if base_url.rstrip("/").endswith("/v1") else base_url


def send_day(base_url: str, write_key: str = DEFAULT_WRITE_KEY, *, users: int = 40,
             events: int = 400, late: dict[str, int] | None = None, duplicates: int = 5,
             stitch: int = 3, aliases: int = 1, seed: int = 7, settle: bool = False,
             timeout_s: float = 60.0) -> SentDay:
    """Send one day of activity to the Ingest API at `base_url` (`http://127.0.0.1:PORT/v1`).

    On-time messages carry no `timestamp` (the server stamps receipt time); late ones carry
    `timestamp` = server now - age. Server now is read from the local server's /_sim/info.
    Everything is sent in /v1/batch requests of at most 500 items and 500 KB, plus single
    /v1/alias calls. With `settle`, the server clock is then moved past the processing delay
    (/_sim/mutate, no other activity) so every message is visible when this returns.
    """
    rng = random.Random(seed)
    late = DEFAULT_LATE if late is None else late
    root = _root(base_url.rstrip("/"))
    with httpx.Client(base_url=base_url, timeout=timeout_s,
                      headers={"Authorization": f"Bearer {write_key}"}) as c:
        info = httpx.get(f"{root}/_sim/info", timeout=timeout_s).json()
        now = parse_ms(info["now"])
        sent = SentDay(now=info["now"])
        tag = f"{seed}_{now}"
        sent.user_ids = [f"usr_day_{tag}_{i}" for i in range(users)]
        items: list[dict[str, Any]] = []

        def message(item: dict[str, Any]) -> dict[str, Any]:
            mid = f"msg_{tag}_{len(sent.message_ids)}"
            sent.message_ids.append(mid)
            item["message_id"] = mid
            items.append(item)
            if item["type"] in ("identify", "track", "page", "group"):
                sent.events += 1
            return item

        for uid in sent.user_ids:
            message({"type": "identify", "user_id": uid,
                     "traits": {"email": f"{uid}@example.com", "plan": rng.choice(
                         ["free", "growth", "scale"])}})
        visitors = [f"anon_day_{tag}_{i}" for i in range(max(stitch, 1) * 2)]
        for i in range(events):
            who: dict[str, Any] = ({"anonymous_id": rng.choice(visitors)} if rng.random() < 0.2
                                   else {"user_id": rng.choice(sent.user_ids)})
            if rng.random() < 0.4:
                message({"type": "page", **who, "name": rng.choice(_PAGES),
                         "properties": {"path": rng.choice(_PAGES)}})
            else:
                message({"type": "track", **who, "event": rng.choice(_EVENTS),
                         "properties": {"n": i}})
        for age, n in late.items():
            ts = iso_ms(now - parse_duration_ms(age))
            for _ in range(n):
                item = message({"type": "track", "user_id": rng.choice(sent.user_ids),
                                "event": "offline_action", "timestamp": ts})
                sent.late_message_ids.append(item["message_id"])
            sent.late[age] = sent.late.get(age, 0) + n
        for anon in visitors[:stitch]:  # the visitor logs in: both ids, stitched
            message({"type": "identify", "user_id": rng.choice(sent.user_ids),
                     "anonymous_id": anon})
            sent.stitched += 1
        for item in rng.sample(items, min(duplicates, len(items))):
            items.append(dict(item))  # redelivered: same message_id, dropped by the server
            sent.duplicates += 1
        for chunk in _chunks(items):
            r = c.post("/batch", json={"batch": chunk})
            r.raise_for_status()
            sent.requests += 1
            bad = [i for i in r.json()["items"] if not i["success"]]
            if bad:
                raise RuntimeError(f"the Ingest API refused items of the day: {bad[:3]}")
        for k in range(aliases):
            prev = f"anon_day_{tag}_alias_{k}"
            c.post("/track", json={"anonymous_id": prev, "event": "landing",
                                   "message_id": f"msg_{tag}_alias_{k}"}).raise_for_status()
            sent.message_ids.append(f"msg_{tag}_alias_{k}")
            sent.events += 1
            c.post("/alias", json={"previous_id": prev, "user_id": sent.user_ids[k % users]}
                   ).raise_for_status()
            sent.requests += 2
            sent.aliases += 1
    if settle:
        delay = int(info.get("processing_delay_ms", 5000))
        httpx.post(f"{root}/_sim/mutate", json={"advance": f"{delay // 1000 + 1}s",
                                                "activity": False},
                   timeout=timeout_s).raise_for_status()
    return sent


def _chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Batches within the documented limits: 500 items and 500 KB (with room for the
    envelope)."""
    out: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(orjson.dumps(item)) + 1
        if cur and (len(cur) == MAX_BATCH_ITEMS or size + n > MAX_BODY_BYTES - 1024):
            out.append(cur)
            cur, size = [], 0
        cur.append(item)
        size += n
    if cur:
        out.append(cur)
    return out
