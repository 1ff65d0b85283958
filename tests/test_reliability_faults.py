"""Fault storms end in an exact copy, or in one clear error after bounded retries.

Real HTTP to the local server with its fault control plane on (PUT /_sim/faults), real dlt
pipelines, real DuckDB files. Every sync that is expected to succeed ends with every table of
`warehouse.CHECKS` equal to /_sim/truth; every storm is checked to have actually happened
(/_sim/stats counts the injected faults).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import control
from dlt.pipeline.exceptions import PipelineStepFailed
from warehouse import CHECKS, Warehouse, assert_equals_truth

from growthos_source.cli_errors import one_line
from growthos_source.isolation import TablesFailedError

SIZE = {"contacts": 120, "events": 1200}
# Many attempts with tiny waits: a storm of 15 % faults must get through, and fast.
PATIENT = {"max_attempts": 12, "backoff_base": 0.005, "backoff_max": 0.05}
# Small pages and 60-day event windows: most walks span several pages, so cursors are in play
# (~300 requests, more than half of them with a cursor).
STORM_SYNC = {"page_size": 20, "events_window_days": 60, **PATIENT}

# kind -> fault settings; the stats counter that proves the faults were injected.
STORMS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "error": ({"error_rate": 0.15}, ("fault_error",)),
    "rate_limit": ({"rate_limit_rate": 0.15, "retry_after_s": 0}, ("fault_rate_limit",)),
    "disconnect": ({"disconnect_rate": 0.15}, ("fault_disconnect",)),
    "truncate": ({"truncate_rate": 0.15}, ("fault_truncate",)),
    "cursor_expiry": ({"cursor_expiry_rate": 0.1}, ("fault_cursor_expiry",)),
    "latency": ({"latency_ms": 8}, ()),
    "mixed": ({"error_rate": 0.05, "rate_limit_rate": 0.05, "retry_after_s": 0,
               "disconnect_rate": 0.05, "truncate_rate": 0.05, "cursor_expiry_rate": 0.1,
               "latency_ms": 3},
              ("fault_error", "fault_rate_limit", "fault_disconnect", "fault_truncate",
               "fault_cursor_expiry")),
}


def set_faults(sim: Any, **cfg: Any) -> None:
    r = control(sim, "PUT", "faults", json=cfg)
    assert r.status_code == 200, r.text


def stats(sim: Any) -> dict[str, int]:
    return dict(control(sim, "GET", "stats").json())


def assert_all_tables_equal_truth(wh: Warehouse) -> None:
    for table in CHECKS:
        assert_equals_truth(wh, table)


@pytest.mark.parametrize("kind", list(STORMS))
def test_storm_ends_in_an_exact_copy(make_sim, tmp_path: Path, kind: str) -> None:
    cfg, counters = STORMS[kind]
    sim = make_sim(**SIZE)
    set_faults(sim, seed=11, **cfg)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=tuple(CHECKS), **STORM_SYNC)
    injected = stats(sim)
    for name in counters:
        assert injected.get(name, 0) > 0, f"no {name} injected: {injected}"
    assert_all_tables_equal_truth(wh)


@pytest.mark.parametrize("dialect", ["document", "docs"])
def test_mixed_storm_incremental_run_after_changes_is_exact(make_sim, tmp_path: Path,
                                                            dialect: str) -> None:
    """A first sync, a day of activity (creates, updates, deletes), a second sync: all under
    mixed faults, and the incremental result is still exact, from either dialect."""
    sim = make_sim(dialect=dialect, **SIZE)
    cfg = STORMS["mixed"][0]
    set_faults(sim, seed=5, **cfg)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=tuple(CHECKS), **STORM_SYNC)
    control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
    set_faults(sim, seed=6, **cfg)
    wh.sync(resources=tuple(CHECKS), **STORM_SYNC)
    assert stats(sim).get("fault_error", 0) > 0
    assert_all_tables_equal_truth(wh)


def test_retry_after_is_honoured(make_sim, tmp_path: Path) -> None:
    """Spurious 429s with Retry-After: 1 make the client wait at least that long (it does not
    hammer the API with immediate retries), and the copy is exact."""
    sim = make_sim(contacts=30, events=100)
    set_faults(sim, seed=3, rate_limit_rate=0.3, retry_after_s=1)
    wh = Warehouse(tmp_path, sim)
    started = time.monotonic()
    wh.sync(resources=("surveys", "survey_stats", "campaigns"), **PATIENT)
    elapsed = time.monotonic() - started
    assert stats(sim).get("fault_rate_limit", 0) > 0
    assert elapsed >= 1.0
    for table in ("surveys", "survey_stats", "campaigns"):
        assert_equals_truth(wh, table)


def test_pacing_stays_under_the_plan_limit(make_sim, tmp_path: Path) -> None:
    """On the Free plan (10 req/s) the client paces itself from the X-RateLimit-* headers: a
    sync of ~40 requests in 4 s gets at most one 429 (unpaced, it would send them in about one
    second and collect ~30). The server counts per wall-clock second, so a request delayed past
    a second boundary can still meet a full window once."""
    sim = make_sim(contacts=30, events=100, plan="free")
    wh = Warehouse(tmp_path, sim)
    tables = ("surveys", "survey_responses", "survey_stats", "campaigns", "campaign_stats")
    wh.sync(resources=tables, **PATIENT)
    served = stats(sim)
    assert served.get("requests", 0) >= 30
    assert served.get("rate_limited", 0) <= 1, served
    for table in tables:
        assert_equals_truth(wh, table)


# Parents, children, per-parent incremental state, the event stream and a replace table.
TABLES = ("contacts", "surveys", "survey_responses", "events", "segment_memberships")


def _state_and_counts(wh: Warehouse) -> tuple[Any, dict[str, int]]:
    counts = {t: wh.query(f"SELECT COUNT(*), MAX(_dlt_load_id) FROM {{ds}}.{t}")[0]
              for t in TABLES}
    return dict(wh.pipeline.state.get("sources", {})), counts


def test_error_rate_one_fails_fast_with_one_clear_line_and_changes_nothing(
        make_sim, tmp_path: Path) -> None:
    """Every request answers 500: the run ends after max_attempts per request with one line
    naming the attempts, quickly, and neither the warehouse nor the state moves (no partial
    success). With the faults gone, the next run is exact."""
    sim = make_sim(contacts=60, events=300)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=TABLES)
    control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
    before = _state_and_counts(wh)
    set_faults(sim, seed=1, error_rate=1.0)
    started = time.monotonic()
    # Every table fails alike: dlt's error, or ours naming every table (isolation.py).
    with pytest.raises((PipelineStepFailed, TablesFailedError)) as err:
        wh.sync(resources=TABLES, max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    assert time.monotonic() - started < 30
    line = one_line(err.value)
    assert "\n" not in line
    assert "server error 500" in line and "after 3 attempts" in line, line
    assert "request_id=" in line
    assert not wh.pipeline.has_pending_data
    assert _state_and_counts(wh) == before
    set_faults(sim, seed=1)
    wh.sync(resources=TABLES)
    for table in TABLES:
        assert_equals_truth(wh, table)


@pytest.mark.parametrize("cfg, words", [
    ({"disconnect_rate": 1.0}, ("cannot reach", "2 attempts")),
    ({"truncate_rate": 1.0}, ("not valid JSON", "2 attempts")),
    ({"rate_limit_rate": 1.0, "retry_after_s": 0}, ("rate limited (429)", "after 2 attempts")),
])
def test_other_hopeless_storms_fail_with_one_clear_line(make_sim, tmp_path: Path,
                                                        cfg: dict[str, Any],
                                                        words: tuple[str, ...]) -> None:
    sim = make_sim(contacts=20, events=50)
    set_faults(sim, seed=2, **cfg)
    wh = Warehouse(tmp_path, sim)
    with pytest.raises(PipelineStepFailed) as err:
        wh.sync(resources=("surveys",), max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    line = one_line(err.value)
    assert "\n" not in line and all(w in line for w in words), line
    assert "surveys" not in wh.tables()


def test_expired_cursors_restart_a_list_walk_and_the_copy_is_exact(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """15 % of cursored requests answer 400 cursor_expired: the contacts walk (10 pages) restarts
    from its beginning each time, skipping what it already read, and the result is exact. The
    simulator draws each fault from the seed and the request, so the same requests expire on
    every run (seed 5 gives at least five expiries)."""
    sim = make_sim(contacts=200, events=50)
    set_faults(sim, seed=5, cursor_expiry_rate=0.15)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("WARNING", logger="growthos_source")
    wh.sync(resources=("contacts",), page_size=20, workers=1, **PATIENT)
    expired = stats(sim).get("fault_cursor_expiry", 0)
    assert expired >= 5
    assert caplog.text.count("restarting the walk") == expired
    assert_equals_truth(wh, "contacts")


def test_a_long_walk_survives_many_expiries_that_each_make_progress(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One event window of 150 pages with 10 % of cursors expiring: ~15 expiries in one walk,
    each resumed below the oldest event read. Only restarts that made no progress count against
    the cap (8), so the walk completes and is exact. One resource, one worker: deterministic."""
    sim = make_sim(contacts=60, events=3000)
    set_faults(sim, seed=8, cursor_expiry_rate=0.1)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("WARNING", logger="growthos_source")
    wh.sync(resources=("events",), page_size=20, events_window_days=36500, workers=1,
            **PATIENT)
    expired = stats(sim).get("fault_cursor_expiry", 0)
    assert expired > 8
    assert caplog.text.count("resuming the window before") == expired
    assert_equals_truth(wh, "events")


def test_cursor_expiry_rate_one_ends_with_a_clear_error(make_sim, tmp_path: Path) -> None:
    """Every cursor expires: restarts are capped, the run ends (no endless loop) with one line
    saying so, and nothing is loaded."""
    sim = make_sim(contacts=60, events=100)
    set_faults(sim, seed=4, cursor_expiry_rate=1.0)
    wh = Warehouse(tmp_path, sim)
    started = time.monotonic()
    with pytest.raises(PipelineStepFailed) as err:  # one walk of 3 pages (no windows)
        wh.sync(resources=("contacts",), page_size=20, workers=1)
    assert time.monotonic() - started < 30
    line = one_line(err.value)
    assert "\n" not in line and "/contacts" in line and "expired" in line, line
    assert "restarted 9 times in a row without progress" in line, line
    assert "contacts" not in wh.tables()
    assert not wh.pipeline.has_pending_data
