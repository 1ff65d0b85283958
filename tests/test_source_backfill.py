"""Chunked event backfill: each chunk of windows is its own committed load, so an interrupted
backfill resumes where it stopped, then hands over to incremental syncing."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dlt
import httpx
import pytest
from conftest import control, truth
from warehouse import Warehouse, assert_equals_truth

from growthos_source import sync
from growthos_source.warehouse import duckdb as warehouse_duckdb
from growthos_source.warehouse import duckdb_destination


def factory(wh: Warehouse, **fixed: Any) -> Any:
    return lambda **kw: wh.source(**{**fixed, **kw}).with_resources("events", "contacts")


def test_chunked_backfill_equals_truth_and_reports_progress(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=80, events=3000)
    wh = Warehouse(tmp_path, sim)
    lines: list[str] = []
    result = sync(wh.pipeline, factory(wh, events_window_days=30), backfill_windows=4,
                  progress=lines.append)
    assert result.rows["events"] == 3000
    assert len(lines) >= 3 and "windows" in lines[0] and "ETA" in lines[0]
    assert_equals_truth(wh, "events")
    assert_equals_truth(wh, "contacts")
    marks = wh.pipeline.state["sources"]["growthos"]["marks"]["events"]
    assert marks["backlog_windows"] == 0 and "through" not in marks
    # Caught up: the next run reads only the tail, and new events arrive incrementally.
    control(sim, "POST", "mutate", json={"advance": "1d", "events": {"create": 40}})
    again = sync(wh.pipeline, factory(wh, events_window_days=30), backfill_windows=4)
    assert again.rows["events"] == 40
    assert_equals_truth(wh, "events")


class Interrupted(Exception):
    """Stands for the process being stopped between two chunks."""


def test_interrupted_backfill_keeps_finished_chunks(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=80, events=3000)
    wh = Warehouse(tmp_path, sim)
    chunks: list[str] = []

    def break_after_two(line: str) -> None:
        chunks.append(line)
        if len(chunks) == 2:  # the process stops after its second chunk committed
            # (Not the API failing: chunks the feed has read ahead need no request of their
            # own, so they would still load.)
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        sync(wh.pipeline, factory(wh, events_window_days=30), backfill_windows=4,
             progress=break_after_two)
    kept = wh.query("SELECT COUNT(*) FROM {ds}.events")[0][0]
    assert 0 < kept < 3000
    before = control(sim, "GET", "stats").json()["requests"]
    sync(wh.pipeline, factory(wh, events_window_days=30), backfill_windows=4)
    resumed_requests = control(sim, "GET", "stats").json()["requests"] - before
    assert_equals_truth(wh, "events")
    # Resumed, not restarted: fewer requests than a backfill from scratch of the same data.
    fresh = Warehouse(tmp_path / "fresh", sim)
    before = control(sim, "GET", "stats").json()["requests"]
    sync(fresh.pipeline, factory(fresh, events_window_days=30), backfill_windows=4)
    from_scratch = control(sim, "GET", "stats").json()["requests"] - before
    assert resumed_requests < from_scratch
    assert len(truth(sim, "events")) == 3000


def test_events_arriving_while_chunks_are_read_ahead_are_not_lost(make_sim,
                                                                  tmp_path: Path) -> None:
    """The chunked backfill reads the next chunk's windows while dlt loads the current one
    (prefetch.py). Events created in the middle of the backfill land in the open-ended last
    window, which may already have been read ahead: one sync() still ends exact."""
    sim = make_sim(contacts=80, events=3000)
    wh = Warehouse(tmp_path, sim)
    lines: list[str] = []

    def activity(line: str) -> None:
        lines.append(line)
        if len(lines) in (1, 3):
            control(sim, "POST", "mutate", json={"advance": "2d", "events": {"create": 50}})

    sync(wh.pipeline, factory(wh, events_window_days=30), backfill_windows=3, progress=activity)
    assert len(lines) >= 3
    assert len(truth(sim, "events")) == 3100
    assert_equals_truth(wh, "events")


def test_the_caught_up_run_after_a_backfill_gets_its_lookback_read_by_the_feed(
        make_sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run that follows a chunked backfill walks the lookback behind the newest event. The
    backfill's feed reads that walk while its last chunk ends and loads (prefetch.py `tail`),
    so the caught-up run sends none of it again; the copy stays exact."""
    sim = make_sim(contacts=80, events=3000)
    wh = Warehouse(tmp_path, sim)
    sent: list[tuple[str, dict[str, list[str]], str]] = []
    real = httpx.HTTPTransport.handle_request

    def recording(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, parse_qs(request.url.query.decode()),
                     threading.current_thread().name))
        return real(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", recording)
    sync(wh.pipeline, lambda **kw: wh.source(page_size=10, **kw).with_resources("events"),
         backfill_windows=1)
    assert_equals_truth(wh, "events")
    # The lookback's first page: 10 minutes behind the newest event, down to a quarter hour.
    newest = dt.datetime.fromisoformat(max(e["timestamp"] for e in truth(sim, "events"))
                                       .replace("Z", "+00:00")) - dt.timedelta(minutes=10)
    since = newest.replace(minute=newest.minute // 15 * 15, second=0, microsecond=0)
    tail = [(q, thread) for path, q, thread in sent if path.endswith("/analytics/events")
            and q.get("from") == [since.strftime("%Y-%m-%dT%H:%M:%S.000Z")]
            and "to" not in q and "cursor" not in q]
    assert len(tail) == 1, tail
    assert tail[0][1].startswith("growthos-feed"), tail


def test_backfill_from_long_before_the_first_event_skips_the_empty_years(
        make_sim, tmp_path: Path) -> None:
    """A start date decades before the first event ("everything") costs a search for where
    the events begin, not a walk (and in chunks, a dlt run) of every empty window before it."""
    sim = make_sim(contacts=80, events=3000)
    first_day = min(e["timestamp"] for e in truth(sim, "events"))[:10]
    requests = {}
    for name, start in (("from the first day", first_day), ("from 1990", "1990-01-01")):
        wh = Warehouse(tmp_path / name.replace(" ", "_"), sim)
        before = control(sim, "GET", "stats").json().get("requests", 0)
        sync(wh.pipeline, lambda wh=wh, start=start, **kw: wh.source(
                 events_window_days=30, start_date=start, **kw).with_resources("events"),
             backfill_windows=4)
        requests[name] = control(sim, "GET", "stats").json().get("requests", 0) - before
        assert_equals_truth(wh, "events")
    # 36 empty years are ~440 windows of 30 days; the search is a few rounds of 8 probes.
    assert requests["from 1990"] <= requests["from the first day"] + 60, requests


def test_backfill_windows_planned_from_the_daily_counts_cost_about_the_pages(
        make_sim, tmp_path: Path) -> None:
    """By default a chunked backfill cuts its windows from the API's daily event counts (about
    a hundred pages each, backfill_plan.py): the requests are close to the pages the events
    fill, where fixed weekly windows each end with a partial page. Chunks still commit
    separately, and the copy is exact."""
    sim = make_sim(contacts=80, events=3000)
    requests = {}
    for name, window_days in (("planned", None), ("weekly", 7)):
        wh = Warehouse(tmp_path / name, sim)
        lines: list[str] = []
        before = control(sim, "GET", "stats").json().get("requests", 0)
        # One walk at a time: a chunk takes a window per walk (more walks, bigger chunks).
        sync(wh.pipeline, lambda wh=wh, days=window_days, **kw: wh.source(
            page_size=10, events_window_days=days, workers=1, **kw).with_resources("events"),
             backfill_windows=1, progress=lines.append)
        requests[name] = control(sim, "GET", "stats").json().get("requests", 0) - before
        assert_equals_truth(wh, "events")
        if name == "planned":  # ~1,000 events a window (100 pages of 10), one a chunk
            assert lines and lines[0].startswith("events backfill: 1/3 windows"), lines
    pages = 3000 // 10
    # The pages, the count queries, a few probes and one partial page per window.
    assert requests["planned"] <= pages + 10, requests
    assert requests["weekly"] >= requests["planned"] + 40, requests


def test_a_chunked_backfill_into_the_default_warehouse_loads_without_the_vacuum(
        make_sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our DuckDB destination (the CLI's and the demo's): between the backfill's chunks the
    database has DuckDB's vacuum off (warehouse/duckdb.py `vacuum_off`), after the sync it is
    back to DuckDB's default, and the copy is exact. A caught-up sync keeps the vacuum."""
    blocks: list[int] = []
    real = warehouse_duckdb.vacuum_off

    def counted(p: Any) -> Any:
        blocks.append(1)
        return real(p)

    monkeypatch.setattr(warehouse_duckdb, "vacuum_off", counted)
    sim = make_sim(contacts=40, events=1500)
    wh = Warehouse(tmp_path, sim)
    pipeline = dlt.pipeline("vacuum", pipelines_dir=str(tmp_path / "pipelines"),
                            destination=duckdb_destination(str(tmp_path / "v.duckdb")),
                            dataset_name="gos")

    def vacuum_tasks() -> int:
        with pipeline.sql_client() as c:
            (value,), = c.execute_sql("SELECT current_setting('max_vacuum_tasks')")
        return int(value)

    between: list[int] = []
    result = sync(pipeline, factory(wh, events_window_days=30), backfill_windows=4,
                  progress=lambda _: between.append(vacuum_tasks()))
    assert between and set(between) == {0}
    assert vacuum_tasks() > 0
    assert result.rows["events"] == 1500
    with pipeline.sql_client() as c:
        (n, distinct), = c.execute_sql("SELECT count(*), count(DISTINCT id) FROM events")
    assert (n, distinct) == (1500, 1500)
    assert blocks == [1]
    control(sim, "POST", "mutate", json={"advance": "1d", "events": {"create": 40}})
    sync(pipeline, factory(wh, events_window_days=30), backfill_windows=4)
    assert blocks == [1]  # caught up: no block
