"""Late events in the local server: events whose `timestamp` is older than the newest stored one
land inside the stream's history, and every view of the stream stays exact (real HTTP)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import control, truth

from growthos_sim import SimServer
from growthos_sim.events import EventStore

Row = dict[str, Any]
SIZE = {"contacts": 120, "events": 1500}


def walk(c: httpx.Client, path: str, cursor: str | None = None, limit: int = 100,
         **params: Any) -> list[Row]:
    rows: list[Row] = []
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = c.get(path, params=q).json()
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        cursor = page["next_cursor"]


def key(e: Row) -> tuple[str, str]:
    return e["timestamp"], e["id"]


def daily(events: list[Row]) -> Counter[tuple[str, str]]:
    return Counter((e["timestamp"][:10], e["event"]) for e in events)


def test_mutate_late_events_land_in_the_past_and_every_view_agrees(make_sim, api) -> None:
    """Late events of ages seconds to months: truth, the stream, contact events and the daily
    counts all hold them, in (timestamp, id) order, with `received_at` at receipt."""
    s: SimServer = make_sim(**SIZE)
    c = api(s)
    before = {e["id"] for e in truth(s, "events")}
    ages = {"3s": 4, "1h": 5, "1d": 3, "5d": 6, "90d": 2}
    done = control(s, "POST", "mutate", json={
        "advance": "2h", "events": {"create": 10, "late": ages}}).json()
    assert done["events"] == {"create": 10, "late": ages}
    events = truth(s, "events")
    new = [e for e in events if e["id"] not in before]
    assert len(new) == 10 + sum(ages.values())
    for e in new:
        # Received inside the mutate window; late ones carry a timestamp before the receipt.
        assert done["from"] < e["received_at"] <= done["to"]
        assert e["timestamp"] <= e["received_at"]
    older = sorted((e for e in new if e["timestamp"] < done["from"]), key=key)
    assert len(older) >= 2 + 3 + 6  # the 90d, 1d and 5d ones at least
    assert min(e["timestamp"] for e in new) < "2026-03-15"  # 90 days before the clock
    # Stream order holds with the inserts in the middle.
    assert [key(e) for e in events] == sorted(map(key, events), reverse=True)
    assert walk(c, "/analytics/events") == events
    # Per contact: the contact's events in the same order, late ones included.
    for cid in {e["contact_id"] for e in older}:
        assert walk(c, f"/contacts/{cid}/events", limit=7) == [
            e for e in events if e["contact_id"] == cid]
    # Daily counts (truth and POST /analytics/query) include the late events' days.
    counted = {(d["date"], d["event"]): d["count"] for d in truth(s, "daily_event_counts")}
    assert counted == daily(events)
    day = older[0]["timestamp"][:10]
    q = c.post("/analytics/query", json={"type": "event_count", "from": day, "to": day,
                                          "interval": "day"}).json()
    assert q["total"] == sum(n for (d, _), n in daily(events).items() if d == day)


def test_cursor_handed_out_before_an_insert_stays_valid(make_sim, api) -> None:
    """A walk under way when late events land: the rest of the walk returns every event older
    than its cursor, including the late ones inserted below it, with no repeats."""
    s: SimServer = make_sim(**SIZE)
    c = api(s)
    first = c.get("/analytics/events", params={"limit": 100}).json()
    boundary = key(first["data"][-1])
    contact = first["data"][0]["contact_id"]
    cfirst = c.get(f"/contacts/{contact}/events", params={"limit": 2}).json()
    control(s, "POST", "mutate", json={"advance": "1s", "activity": False,
                                       "events": {"create": 3, "late": {"1h": 10, "30d": 10}}})
    rest = walk(c, "/analytics/events", cursor=first["next_cursor"])
    events = truth(s, "events")
    assert rest == [e for e in events if key(e) < boundary]
    assert len({e["id"] for e in rest}) == len(rest)
    if cfirst["has_more"]:
        cb = key(cfirst["data"][-1])
        crest = walk(c, f"/contacts/{contact}/events", cursor=cfirst["next_cursor"], limit=2)
        assert crest == [e for e in events if e["contact_id"] == contact and key(e) < cb]


def test_merge_moves_late_events_too(make_sim, api) -> None:
    """A merge after late events: the source's events, late ones included, move to the target."""
    s: SimServer = make_sim(**SIZE)
    c = api(s)
    control(s, "POST", "mutate", json={"events": {"late": {"2d": 40}}})
    events = truth(s, "events")
    src = Counter(e["contact_id"] for e in events).most_common(2)
    target, source = src[0][0], src[1][0]
    r = c.post(f"/contacts/{target}/merge", json={"source_contact_id": source})
    assert r.status_code == 200, r.text
    after = truth(s, "events")
    mine = walk(c, f"/contacts/{target}/events")
    assert mine == [e for e in after if e["contact_id"] == target]
    assert len(mine) == src[0][1] + src[1][1]
    assert not [e for e in after if e["contact_id"] == source]


def test_mutate_refuses_bad_late_specs(make_sim) -> None:
    s: SimServer = make_sim(**SIZE)
    n = len(truth(s, "events"))
    for bad in ({"late": 5}, {"late": {"soon": 3}}, {"late": {"1h": -1}}, {"late": {"0s": 1}},
                {"via_ingest": "yes"}, {"late": {"1h": True}}):
        r = control(s, "POST", "mutate", json={"events": {"create": 1, **bad}})
        assert r.status_code == 400, bad
        assert "events." in r.json()["error"]
    assert len(truth(s, "events")) == n


def test_store_refuses_a_duplicate_key_in_the_middle() -> None:
    """Unit check of the store's insert: the same event twice is a bug, not a second event."""
    st = EventStore()
    st.load_sorted([(t, f"evt_{t:04d}", "con_a", "x", b"{}") for t in (10, 20, 30)])
    st.append(15, "evt_0015", "con_b", "y", {})
    with pytest.raises(ValueError, match="already stored"):
        st.append(15, "evt_0015", "con_b", "y", {})
    assert st.ts == [10, 15, 20, 30] and st.by_contact["con_b"].ids == ["evt_0015"]
    assert st.daily[("1970-01-01", "y")] == 1


def test_store_splices_a_burst_exactly() -> None:
    """A burst of late rows (spliced in one pass per column) gives the same store as inserting
    them one by one."""
    base = [(t * 10, f"evt_{t:04d}", f"con_{t % 3}", "x", b"{}") for t in range(50)]
    late = [(t * 7 + 3, f"evt_l{t:03d}", f"con_{t % 4}", "y", b"{}") for t in range(40)]
    one, burst = EventStore(), EventStore()
    one.load_sorted(list(base))
    burst.load_sorted(list(base))
    for r in late:
        one.load_sorted([r])
    burst.load_sorted(list(late))
    for col in ("ts", "ids", "contact", "name", "blob"):
        assert getattr(one, col) == getattr(burst, col)
    assert {c: k.keys() for c, k in one.by_contact.items()} == {
        c: k.keys() for c, k in burst.by_contact.items()}
    assert one.daily == burst.daily
    keys = list(zip(burst.ts, burst.ids))
    assert keys == sorted(keys) and len(keys) == 90
