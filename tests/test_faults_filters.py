"""An API that ignores filters or never ends a list: the copy stays exact (each record loaded
once) or the run stops with one clear line, never with duplicates.

Real HTTP to the local server with the faults `ignore_filters` and `endless_page_rate`
(PUT /_sim/faults), real dlt pipelines, real DuckDB files, in both dialects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from dlt.pipeline.exceptions import PipelineStepFailed
from warehouse import CHECKS, Warehouse, assert_equals_truth

from growthos_source.cli_errors import one_line
from growthos_source.isolation import TablesFailedError

SIZE = {"contacts": 120, "events": 1200}
TIME_FILTERS = ["from", "to", "created_after", "created_before"]
DIALECTS = ["document", "docs"]


def set_faults(sim: Any, **cfg: Any) -> None:
    r = control(sim, "PUT", "faults", json=cfg)
    assert r.status_code == 200, r.text


def stats(sim: Any) -> dict[str, int]:
    return dict(control(sim, "GET", "stats").json())


def test_sim_ignores_the_listed_filters(make_sim: Any, api: Any) -> None:
    sim = make_sim(contacts=30, events=300)
    c = api(sim)
    window = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z", "limit": 100}
    honoured = c.get("/analytics/events", params=window).json()["data"]
    assert all("2026-05-01" <= e["timestamp"] < "2026-05-02" for e in honoured)
    set_faults(sim, ignore_filters=["from", "to"])
    ignored = c.get("/analytics/events", params=window).json()["data"]
    assert len(ignored) == 100 and any(e["timestamp"] >= "2026-05-02" for e in ignored)
    # created_before is still honoured: only the listed filters are ignored
    assert c.get("/contacts", params={"created_before": "2000-01-01T00:00:00Z"}).json()[
        "data"] == []
    r = control(sim, "PUT", "faults", json={"ignore_filters": ["updated_after"]})
    assert r.status_code == 400 and "ignore_filters" in r.text


def test_sim_endless_pages_repeat_the_last_page_with_fresh_cursors(make_sim: Any,
                                                                   api: Any) -> None:
    sim = make_sim(contacts=30, events=50)
    set_faults(sim, seed=1, endless_page_rate=1.0)
    c = api(sim)
    first = c.get("/contacts", params={"limit": 20}).json()
    cursors, pages = {first["next_cursor"]}, []
    cursor = first["next_cursor"]
    for _ in range(4):
        page = c.get("/contacts", params={"limit": 20, "cursor": cursor}).json()
        assert page["has_more"] is True and page["next_cursor"] not in cursors
        cursors.add(page["next_cursor"])
        cursor = page["next_cursor"]
        pages.append([r["id"] for r in page["data"]])
    assert pages[0] and all(p == pages[0] for p in pages)  # the last 10 contacts, forever
    assert stats(sim)["fault_endless_page"] == 4


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ignored_time_filters_still_load_each_record_once(
        make_sim: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, dialect: str) -> None:
    """The event stream's from/to and the contact list's created_after/before ignored: the
    history search notices (one probe) instead of going back 50 years, the stream is read as one
    walk, contact windows fall back to one walk, and a later run loads only what is new."""
    sim = make_sim(dialect=dialect, **SIZE)
    set_faults(sim, seed=3, ignore_filters=TIME_FILTERS)
    wh = Warehouse(tmp_path, sim)
    tables = ("events", "contacts", "daily_event_counts")
    caplog.set_level("WARNING", logger="growthos_source")
    first = wh.sync(resources=tables, page_size=50)
    assert first.rows["events"] == SIZE["events"]
    assert "ignores the event stream's from/to filters" in caplog.text
    assert stats(sim)["requests"] < 200  # 1,200 events at 50 a page: ~24 pages, not 52 weeks
    for t in tables:
        assert_equals_truth(wh, t)
    did = control(sim, "POST", "mutate", json={"advance": "1d", "events": {"create": 100},
                                                "contacts": {"update": 5}}).json()
    again = wh.sync(resources=tables, page_size=50)
    assert again.rows["events"] == 100
    assert again.rows["contacts"] == len(set(did["contacts"]["update"]))
    for t in tables:
        assert_equals_truth(wh, t)


def test_ignored_filters_with_a_backfill_window_keep_its_edges(make_sim: Any,
                                                               tmp_path: Path) -> None:
    """start_date/end_date become from/to, which the API ignores: the walk keeps [from, to)."""
    sim = make_sim(**SIZE)
    set_faults(sim, ignore_filters=TIME_FILTERS)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",), start_date="2025-06-01", end_date="2026-01-01")
    want = sorted(e["id"] for e in truth(sim, "events")
                  if "2025-06-01" <= e["timestamp"] < "2026-01-01")
    got = sorted(r[0] for r in wh.query("SELECT id FROM {ds}.events"))
    assert got == want and want


@pytest.mark.parametrize("dialect", DIALECTS)
def test_lists_that_sometimes_do_not_end_still_load_exactly(make_sim: Any, tmp_path: Path,
                                                            dialect: str) -> None:
    """30 % of last pages say has_more with a fresh cursor and serve the same records again:
    nothing is loaded twice (events are append-only), and every table equals the truth."""
    sim = make_sim(dialect=dialect, **SIZE)
    set_faults(sim, seed=3, endless_page_rate=0.3)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=tuple(CHECKS), page_size=20, events_window_days=60)
    assert stats(sim).get("fault_endless_page", 0) > 0
    for t in CHECKS:
        assert_equals_truth(wh, t)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_list_that_never_ends_stops_with_one_clear_line(make_sim: Any, tmp_path: Path,
                                                          dialect: str) -> None:
    """Every last page says has_more: the loop guard stops each pass after a few pages of
    records already read, restarts are capped, and the run ends (about 90 requests, not
    thousands) with one line naming the list; nothing is loaded."""
    sim = make_sim(dialect=dialect, **SIZE)
    set_faults(sim, seed=3, endless_page_rate=1.0)
    wh = Warehouse(tmp_path, sim)
    with pytest.raises((PipelineStepFailed, TablesFailedError)) as err:
        wh.sync(resources=("contacts",), page_size=20, workers=1)
    line = one_line(err.value)
    assert "\n" not in line and "GET /contacts" in line, line
    assert "only records already read" in line and "restarted 9 times" in line, line
    assert stats(sim)["requests"] < 150
    assert "contacts" not in wh.tables()


def test_an_event_stream_that_never_ends_loads_each_event_once(make_sim: Any,
                                                               tmp_path: Path) -> None:
    """The event walk resumes below the oldest event it read (a point it can express without
    the cursor), where the repeated page has nothing new: the walk ends, exact."""
    sim = make_sim(**SIZE)
    set_faults(sim, seed=3, endless_page_rate=1.0)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",), page_size=50, workers=1, events_window_days=36500)
    assert stats(sim).get("fault_endless_page", 0) > 0
    assert_equals_truth(wh, "events")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_daily_counts_are_grouped_by_event_name_in_either_dialect(make_sim: Any,
                                                                  tmp_path: Path,
                                                                  dialect: str) -> None:
    sim = make_sim(dialect=dialect, contacts=30, events=300)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("daily_event_counts",))
    assert_equals_truth(wh, "daily_event_counts")


def test_counts_not_grouped_by_event_stop_with_one_clear_line(make_sim: Any, api: Any,
                                                              tmp_path: Path) -> None:
    """An API that ignores `group_by` answers {"all": n} per day: loaded as is, the `event`
    column would hold "all". The connector checks the newest event's name is among that day's
    groups and stops with one line instead."""
    sim = make_sim(contacts=30, events=300)
    set_faults(sim, ignore_filters=["group_by"])
    answer = api(sim).post("/analytics/query", json={
        "type": "event_count", "from": "2026-05-01", "to": "2026-05-31", "group_by": "event"})
    assert answer.status_code == 200
    assert {g for d in answer.json()["data"] for g in d["groups"]} == {"all"}
    wh = Warehouse(tmp_path, sim)
    with pytest.raises((PipelineStepFailed, TablesFailedError)) as err:
        wh.sync(resources=("daily_event_counts",))
    line = one_line(err.value)
    assert "\n" not in line and "daily_event_counts" in line, line
    assert "did not count events by name" in line and "deselect daily_event_counts" in line
    assert "daily_event_counts" not in wh.tables()
