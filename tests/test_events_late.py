"""Late events load exactly once, whatever their age: the lookback behind the mark and the
per-day count reconciliation (rereads.py), against the local server over real HTTP, into real
DuckDB files (and once into PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dlt
import psycopg2
from conftest import control, truth
from warehouse import Warehouse, norm

from growthos_sim import DEFAULT_KEY
from growthos_source import growthos, sync

EVENT_COLS = ("id", "timestamp", "contact_id", "user_id")
ROOT = Path(__file__).resolve().parent.parent


def want_events(sim: Any) -> set[tuple[Any, ...]]:
    return {tuple(norm(e.get(c)) for c in EVENT_COLS) for e in truth(sim, "events")}


def assert_events_exact(rows: list[tuple[Any, ...]], sim: Any) -> None:
    """Every event of the warehouse equals the truth in id, timestamp, contact_id and user_id,
    with no id twice."""
    got = [tuple(norm(v) for v in r) for r in rows]
    ids = [g[0] for g in got]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate event ids"
    want = want_events(sim)
    missing, extra = want - set(got), set(got) - want
    assert not missing and not extra, (
        f"{len(missing)} events missing or different (e.g. {sorted(missing)[:2]}), "
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:2]})")


def wh_events(wh: Warehouse) -> list[tuple[Any, ...]]:
    return wh.query(f"SELECT {', '.join(EVENT_COLS)} FROM {{ds}}.events")


def test_late_events_of_every_age_load_exactly_once(make_sim, tmp_path: Path) -> None:
    """Three rounds of activity with late events from seconds to months old: after each sync
    the warehouse equals the truth, and the days the late events fell on were re-read."""
    sim = make_sim(contacts=150, events=2000)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",))
    late = {"3s": 3, "2m": 2, "1h": 3, "1d": 3, "5d": 3, "90d": 2}
    for _ in range(3):
        did = control(sim, "POST", "mutate", json={
            "advance": "3h", "events": {"create": 40, "late": late}}).json()
        assert did["events"]["late"] == late
        result = wh.sync(resources=("events",))
        assert_events_exact(wh_events(wh), sim)
        report = result.events
        assert report["days_fixed"], report  # the 1d/5d/90d ones are behind the lookback
        assert not report["still_different"] and not report["deferred"], report
    # A run with nothing new reads no event again and re-reads no day: its only extra
    # requests are the count queries (~570 days of history, at most 366 days a query).
    result = wh.sync(resources=("events",))
    assert result.rows.get("events", 0) == 0
    assert result.events["days_fixed"] == [] and result.events["reread_requests"] == 2, \
        result.events
    assert_events_exact(wh_events(wh), sim)


def test_a_copy_that_lost_rows_heals_within_the_cap(make_sim, tmp_path: Path) -> None:
    """Rows of three days deleted from the warehouse: with at most two re-read days a run,
    the newest two heal first, the third on the next run; nothing is duplicated."""
    sim = make_sim(contacts=100, events=2000)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",))
    days = [str(r[0]) for r in wh.query(
        "SELECT CAST(timestamp AS DATE) d FROM {ds}.events GROUP BY 1 ORDER BY COUNT(*) DESC, "
        "d LIMIT 3")]
    import duckdb

    with duckdb.connect(wh.db) as con:
        for d in days:
            con.execute(f"DELETE FROM gos.events WHERE CAST(timestamp AS DATE) = DATE '{d}'")
    first = wh.sync(resources=("events",), events_reread_days=2)
    assert sorted(first.events["days_fixed"]) == sorted(sorted(days, reverse=True)[:2])
    assert first.events["deferred"] == sorted(days, reverse=True)[2:]
    second = wh.sync(resources=("events",), events_reread_days=2)
    assert second.events["days_fixed"] == sorted(days, reverse=True)[2:]
    assert_events_exact(wh_events(wh), sim)


KILLED_SYNC = """
import os, signal, sys
sys.path.insert(0, {tests!r})
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
from pathlib import Path
from growthos_sim import SimServer
from growthos_source import rereads, replacements
from warehouse import Warehouse

class Remote:
    base_url = {base_url!r}
    def info(self):
        return {info!r}

where = os.environ["KILL_AT"]
if where == "reread":
    original = rereads.Reread.walk
    def walk(self, ranges, seen=None):
        for i, item in enumerate(original(self, ranges, seen)):
            os.kill(os.getpid(), signal.SIGKILL)  # while the days are being re-read
            yield item
    rereads.Reread.walk = walk
else:
    calls = []
    original_apply = replacements.apply
    def apply(pipeline):
        calls.append(1)
        if len(calls) == 2:  # after the load, before its re-read ranges are replaced
            os.kill(os.getpid(), signal.SIGKILL)
        return original_apply(pipeline)
    replacements.apply = apply  # sync() looks it up on the module at each call
Warehouse(Path({tmp!r}), Remote()).sync(resources=("events",))
"""


def test_a_kill_during_a_reread_or_before_the_replacement_heals(make_sim,
                                                                 tmp_path: Path) -> None:
    """SIGKILL while late days are being re-read, and (another round) after the load but
    before the re-read ranges replaced the old rows: the next sync leaves events exact."""
    sim = make_sim(contacts=100, events=2000)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",))
    for where in ("reread", "replace"):
        control(sim, "POST", "mutate", json={
            "advance": "2h", "events": {"create": 20, "late": {"1d": 3, "30d": 3}}})
        code = KILLED_SYNC.format(tests=str(ROOT / "tests"), base_url=sim.base_url,
                                  info=sim.info(), tmp=str(tmp_path))
        env = {**os.environ, "KILL_AT": where, "RUNTIME__DLTHUB_TELEMETRY": "false"}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        wh.sync(resources=("events",))
        assert_events_exact(wh_events(wh), sim)


def test_late_events_on_postgres(make_sim, tmp_path: Path, postgres_url: str) -> None:
    """The same reconciliation, lookback and replacement SQL on a real PostgreSQL server."""
    sim = make_sim(contacts=80, events=1500)
    pipeline = dlt.pipeline(pipeline_name="late_pg", pipelines_dir=str(tmp_path / "p"),
                            destination=dlt.destinations.postgres(postgres_url),
                            dataset_name="gos")

    def source() -> Any:
        return growthos(api_key=DEFAULT_KEY, base_url=sim.base_url,
                        max_attempts=4).with_resources("events")

    sync(pipeline, source())
    control(sim, "POST", "mutate", json={
        "advance": "2h", "events": {"create": 30, "late": {"3s": 2, "1h": 2, "5d": 3}}})
    result = sync(pipeline, source())
    assert result.events["days_fixed"], result.events
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute(f"SELECT {', '.join(EVENT_COLS)} FROM gos.events")
        assert_events_exact(cur.fetchall(), sim)
