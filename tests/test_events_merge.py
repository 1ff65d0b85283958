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
