"""Merged contacts' events are re-attributed in the same sync (rereads.Reread.reattribute):
every loaded event's contact_id and user_id equal the API's, at a bounded request cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import control, truth
from test_events_late import assert_events_exact, wh_events
from warehouse import Warehouse, assert_equals_truth


def _adopting_pair(sim: Any) -> tuple[str, str]:
    """(target without external_id, source with one and with events): the merge makes the
    target adopt the source's external_id, which rewrites the user_id of the target's own
    events too."""
    contacts = truth(sim, "contacts")
    with_events = {e["contact_id"] for e in truth(sim, "events")}
    target = next(c for c in contacts if c["external_id"] is None and c["id"] in with_events)
    source = next(c for c in contacts if c["external_id"] is not None
                  and c["id"] in with_events and c["id"] != target["id"])
    return target["id"], source["id"]


def test_merges_and_deletes_leave_every_event_attributed_as_the_api_says(
        make_sim, api, tmp_path: Path) -> None:
    sim = make_sim(contacts=120, events=2000)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    control(sim, "POST", "mutate", json={"advance": "1h",
                                         "contacts": {"merge": 3, "delete": 2}})
    target, source = _adopting_pair(sim)
    r = api(sim).post(f"/contacts/{target}/merge", json={"source_contact_id": source})
    assert r.status_code == 200, r.text
    result = wh.sync(resources=("contacts", "events"))
    assert_events_exact(wh_events(wh), sim)
    assert_equals_truth(wh, "contacts")
    report = result.events
    # Far fewer requests than one per moved event (the windows join nearby instants), and
    # nothing deferred.
    moved = sum(1 for e in truth(sim, "events") if e["contact_id"] == target)
    assert 0 < report["reattribute_requests"] <= moved, report
    assert "reattribute_deferred" not in report
    # The next run finds nothing more to re-attribute.
    again = wh.sync(resources=("contacts", "events"))
    assert again.events.get("reattribute_requests", 0) == 0, again.events
    assert_events_exact(wh_events(wh), sim)


def test_over_the_budget_the_next_run_finishes(make_sim, tmp_path: Path) -> None:
    """With no request allowed for re-attribution the merge waits (reported), and the next
    run with a budget re-attributes it."""
    sim = make_sim(contacts=100, events=1500)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"merge": 2}})
    starved = wh.sync(resources=("contacts", "events"), events_reattribute_requests=0)
    assert starved.events.get("reattribute_deferred"), starved.events
    now = {e["id"]: e["contact_id"] for e in truth(sim, "events")}
    assert any(now[i] != c for i, c in wh.query("SELECT id, contact_id FROM {ds}.events"))
    wh.sync(resources=("contacts", "events"))
    assert_events_exact(wh_events(wh), sim)


def test_ingest_late_duplicates_and_an_alias(make_sim, tmp_path: Path) -> None:
    """Through the Ingest API: events dated seconds to weeks back, some still being processed
    while a sync runs, the same message_id sent twice, and an alias that merges an anonymous
    visitor into a user. After each sync the warehouse equals the truth."""
    import httpx

    from growthos_sim import DEFAULT_WRITE_KEY

    sim = make_sim(contacts=80, events=1000)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    ingest = httpx.Client(base_url=sim.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {DEFAULT_WRITE_KEY}"})

    def send(**msg: Any) -> None:
        r = ingest.post("/track", json=msg)
        assert r.status_code == 202, r.text

    def advance(by: str) -> None:
        control(sim, "POST", "mutate", json={"advance": by, "activity": False})

    now = control(sim, "GET", "info").json()["now"]  # 2026-06-01T00:00:00.000Z
    for ts in ("2026-05-31T23:59:58.000Z", "2026-05-31T22:00:00.000Z",
               "2026-05-28T12:00:00.000Z"):
        send(anonymous_id="anon_late", event="viewed", timestamp=ts)
    for _ in range(2):  # a retried send: one event
        send(user_id="usr_alias", event="paid", message_id="msg_dup",
             timestamp="2026-04-20T08:00:00.000Z")
    # Still being processed (5 s) while this sync runs: the next one must pick them up.
    pending = wh.sync(resources=("contacts", "events"))
    assert not [e for e in truth(sim, "events") if e.get("anonymous_id") == "anon_late"]
    advance("10s")
    send(user_id="usr_alias", event="paid", message_id="msg_dup")  # within 24 h: dropped
    alias = ingest.post("/alias", json={"previous_id": "anon_late", "user_id": "usr_alias"})
    assert alias.status_code == 202, alias.text
    advance("10s")
    assert now < control(sim, "GET", "info").json()["now"]
    result = wh.sync(resources=("contacts", "events"))
    assert_events_exact(wh_events(wh), sim)
    mine = [e for e in truth(sim, "events") if e["user_id"] == "usr_alias"]
    assert len(mine) == 4 and len({e["contact_id"] for e in mine}) == 1
    assert result.events["days_fixed"], (pending.events, result.events)


def test_contact_changes_without_merges_cost_no_second_events_run(make_sim,
                                                                  tmp_path: Path) -> None:
    """Contacts updated (no merge, no new external id): nothing to re-attribute, so the sync
    is one load, not a second, events-only dlt run; the next merge is still re-attributed."""
    sim = make_sim(contacts=100, events=1500)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    wh.sync(resources=("contacts", "events"))  # the first check of contact changes
    control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"update": 5}})
    result = wh.sync(resources=("contacts", "events"))
    assert result.rows.get("contacts") == 5 and result.events["reattribute_requests"] == 0

    def loads_of_last_run() -> int:
        ids = wh.query("SELECT load_ids FROM {ds}._growthos_runs ORDER BY finished_at DESC "
                       "LIMIT 1")[0][0]
        return len(ids.split(","))

    assert loads_of_last_run() == 1
    assert_events_exact(wh_events(wh), sim)
    control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"merge": 2}})
    merged = wh.sync(resources=("contacts", "events"))
    assert merged.events["reattribute_requests"] > 0 and loads_of_last_run() == 2
    assert_events_exact(wh_events(wh), sim)
