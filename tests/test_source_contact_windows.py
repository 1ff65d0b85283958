"""/contacts is walked in created_after/created_before windows, several at once.

Real HTTP to the local server, real dlt pipelines and DuckDB files, compared with /_sim/truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import control, truth
from warehouse import Warehouse, assert_equals_truth

from growthos_source.endpoints import ENDPOINTS


def _requests(sim: object) -> int:
    return int(control(sim, "GET", "stats").json().get("requests", 0))


def _ledger_requests(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT requests FROM {{ds}}._growthos_runs WHERE table_name = '{table}' "
                        "ORDER BY started_at DESC LIMIT 1")[0][0])


def _windows(caplog: pytest.LogCaptureFixture) -> set[str]:
    """The created_at windows walked (their filters), from the one line logged per request;
    the one-row probes are not windows."""
    urls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GET /contacts ")]
    return {u.split(", 'limit'")[0] for u in urls
            if "'created_" in u and "'limit': 1}" not in u and "'limit': 1," not in u}


@pytest.mark.parametrize("dialect", ["document", "docs"])
def test_a_first_sync_of_a_one_page_list_costs_one_request(make_sim, tmp_path: Path,
                                                            dialect: str) -> None:
    """50 contacts: the first page of the whole list says it is the last; no search for where
    creation history starts, no windows. Counted by the server and by the ledger."""
    sim = make_sim(contacts=50, events=100, dialect=dialect)
    wh = Warehouse(tmp_path, sim)
    before = _requests(sim)
    wh.sync(resources=("contacts",))
    assert _requests(sim) - before == 1
    assert _ledger_requests(wh, "contacts") == 1
    assert_equals_truth(wh, "contacts")


@pytest.mark.parametrize("dialect", ["document", "docs"])
def test_a_large_list_is_split_into_windows_and_stays_exact(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture, dialect: str) -> None:
    sim = make_sim(contacts=3000, events=100, latency_ms=2, dialect=dialect)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("DEBUG", logger="growthos_source")  # one line per request sent
    before = _requests(sim)
    page_size = 20  # 150 pages
    wh.sync(resources=("contacts",), workers=4, page_size=page_size)
    used = _requests(sim) - before
    wins = _windows(caplog)
    assert len(wins) >= 4, wins
    assert_equals_truth(wh, "contacts")
    dupes = wh.query("SELECT COUNT(*) - COUNT(DISTINCT id) FROM {ds}.contacts")[0][0]
    assert dupes == 0
    # The list's pages, plus its first page read again by the windows, a partial page per
    # window and the two probes of the filters (history starts on the first page: the list
    # is in creation order).
    pages = math.ceil(len(truth(sim, "contacts")) / page_size)
    assert used <= pages + 1 + len(wins) + 2, (used, pages, len(wins))
    assert _ledger_requests(wh, "contacts") == used
    # What the whole walk saw of creation history is kept for the next run's windows: its
    # stretch, its size, and quantiles of created_at from oldest to newest.
    walk = next(ep.table for ep in ENDPOINTS if ep.windowed)
    shape = wh.pipeline.state["sources"]["growthos"]["marks"][walk]["windows"]
    stamps = sorted(str(r["created_at"]) for r in truth(sim, "contacts"))
    assert shape["rows"] == len(stamps) and shape["quantiles"] == sorted(shape["quantiles"])
    assert len(shape["quantiles"]) == 33
    assert shape["quantiles"][0] >= stamps[0] and shape["quantiles"][-1] <= stamps[-1]
    # A later run sizes its windows from what this one saw and probes nothing.
    caplog.clear()
    before = _requests(sim)
    wh.sync(resources=("contacts",), workers=4, page_size=page_size)
    again = _requests(sim) - before
    assert len(_windows(caplog)) >= 4
    assert again <= pages + 1 + len(_windows(caplog)), again
    assert_equals_truth(wh, "contacts")


def test_windowed_walk_still_detects_deletes_and_new_contacts(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim = make_sim(contacts=800, events=100)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",), workers=4, page_size=10)  # 80 pages: split
    did = control(sim, "POST", "mutate", json={
        "advance": "1d", "contacts": {"delete": 4, "create": 25, "update": 10}}).json()
    gone = set(did["contacts"]["delete"])
    caplog.set_level("DEBUG", logger="growthos_source")
    result = wh.sync(resources=("contacts",), workers=4, page_size=10)
    assert len(_windows(caplog)) >= 2
    assert result.deletes_applied["contacts"] == len(gone)
    marked = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert marked == gone
    assert_equals_truth(wh, "contacts")


def test_a_contact_without_created_at_is_never_marked_deleted_by_a_windowed_walk(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A windowed walk cannot see a record without created_at; such warehouse rows are left
    alone rather than marked deleted."""
    sim = make_sim(contacts=400, events=100)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("DEBUG", logger="growthos_source")
    wh.sync(resources=("contacts",), workers=4, page_size=5)  # 80 pages: split
    did = control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"delete": 2}}).json()
    gone = sorted(did["contacts"]["delete"])
    with wh.pipeline.sql_client() as c:
        c.execute_sql(f"UPDATE {c.make_qualified_table_name('contacts')} SET created_at = NULL "
                      f"WHERE id = '{gone[0]}'")
    caplog.clear()
    wh.sync(resources=("contacts",), workers=4, page_size=5)
    assert len(_windows(caplog)) >= 2
    marked = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert marked == {gone[1]}


@pytest.mark.parametrize(("dialect", "ignored"), [
    ("document", ["created_after"]), ("docs", ["created_before"]),
    ("docs", ["created_after", "created_before"])])
def test_an_api_ignoring_the_created_filters_is_walked_once_whole(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture, dialect: str,
        ignored: list[str]) -> None:
    """Windows would each read the whole list: the probes notice, and the first page's walk
    goes on (its pages plus at most the two probes)."""
    sim = make_sim(contacts=3000, events=100, dialect=dialect)
    r = control(sim, "PUT", "faults", json={"ignore_filters": ignored})
    assert r.status_code == 200, r.text
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("DEBUG", logger="growthos_source")
    before = _requests(sim)
    wh.sync(resources=("contacts",), workers=4, page_size=20)
    used = _requests(sim) - before
    assert _windows(caplog) == set()
    pages = math.ceil(len(truth(sim, "contacts")) / 20)
    assert pages < used <= pages + 2, (used, pages)
    assert_equals_truth(wh, "contacts")
