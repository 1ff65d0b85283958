"""The views cope with what a real dataset may lack: tables never loaded (those views are
skipped, and said so), columns dlt never created because every value so far was null, and
nested tables that do not exist yet. Real dlt pipelines into real DuckDB files."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from pipeline_job import SCRIPT

from growthos_sim import DEFAULT_KEY
from growthos_source.models import create_models, drop_models


def _pipeline(tmp: Path) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="models_tolerance", pipelines_dir=str(tmp / "p"),
                        destination=dlt.destinations.duckdb(str(tmp / "t.duckdb")),
                        dataset_name="gos")


def _rows(p: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    with p.sql_client() as c:
        return [tuple(r) for r in c.execute_sql(sql.replace("{ds}", c.fully_qualified_dataset_name()))
                or []]


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc)


def test_missing_tables_and_all_null_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _pipeline(tmp_path)
    # No tags (no contacts__tags table), no external_id, no traits, no _deleted_at column;
    # responses of a custom survey: no score and no category column at all.
    p.run([
        dlt.resource([{"id": "con_a", "email": "a@x.test", "created_at": _t("2026-01-01"),
                       "updated_at": _t("2026-01-02")}], name="contacts"),
        dlt.resource([{"id": "srv_1", "name": "Ideas", "type": "custom", "status": "active"},
                      {"id": "srv_2", "name": "NPS", "type": "nps", "status": "draft"}],
                     name="surveys"),
        dlt.resource([{"id": "resp_1", "survey_id": "srv_1", "comment": "more exports",
                       "responded_at": _t("2026-03-31T23:30:00")}], name="survey_responses"),
    ])
    with caplog.at_level(logging.WARNING, logger="growthos_source"):
        made = create_models(p)
    assert made == ["contacts_current", "survey_nps", "survey_nps_monthly"]
    skipped = "\n".join(r.getMessage() for r in caplog.records)
    assert "skipped campaign_performance: needs tables campaigns, campaign_stats" in skipped
    assert "skipped daily_events: needs table events" in skipped
    assert _rows(p, "SELECT contact_id, email, external_id, tags FROM {ds}.contacts_current") == \
        [("con_a", "a@x.test", None, [])]
    got = _rows(p, "SELECT survey_id, responses, promoters, nps, average_score FROM "
                   "{ds}.survey_nps ORDER BY survey_id")
    # A custom survey has no NPS; an NPS survey nobody answered has none either (as the API).
    assert got == [("srv_1", 1, 0, None, None), ("srv_2", 0, 0, None, None)]
    assert _rows(p, "SELECT survey_id, month FROM {ds}.survey_nps_monthly") == \
        [("srv_1", dt.date(2026, 3, 1))]
    # Run again: the views are replaced, not duplicated or failing.
    assert create_models(p) == made


def test_timezone_moves_day_boundaries(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.run(dlt.resource([{"id": "evt_1", "event": "signup", "contact_id": "con_a",
                         "timestamp": _t("2026-03-31T23:30:00")},
                        {"id": "evt_2", "event": "signup", "contact_id": "con_b",
                         "timestamp": _t("2026-04-01T08:00:00")}], name="events"))
    assert create_models(p) == ["daily_events"]
    sql = "SELECT day, events, unique_contacts FROM {ds}.daily_events ORDER BY day"
    assert _rows(p, sql) == [(dt.date(2026, 3, 31), 1, 1), (dt.date(2026, 4, 1), 1, 1)]
    create_models(p, timezone="Europe/Berlin")  # 23:30 UTC is 01:30 the next day in Berlin
    assert _rows(p, sql) == [(dt.date(2026, 4, 1), 2, 2)]
    with pytest.raises(ValueError, match="timezone \"UTC'; --\" is not a time zone name"):
        create_models(p, timezone="UTC'; --")


def _events() -> Any:
    return dlt.resource([{"id": "evt_1", "event": "signup", "contact_id": "con_a",
                          "timestamp": _t("2026-03-31T23:30:00")}], name="events")


def test_view_of_a_table_gone_is_dropped(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.run(_events())
    assert create_models(p) == ["daily_events"]
    with p.sql_client() as c:
        c.drop_tables("events")
    assert create_models(p) == []
    assert _rows(p, "SELECT COUNT(*) FROM duckdb_views() WHERE schema_name = 'gos'") == [(0,)]


def test_postgres_views_are_dropped_around_a_refresh(tmp_path: Path, postgres_url: str) -> None:
    """PostgreSQL will not drop a table a view reads: drop_models first, create again after."""
    p = dlt.pipeline(pipeline_name="models_pg", pipelines_dir=str(tmp_path / "p"),
                     destination=dlt.destinations.postgres(credentials=postgres_url),
                     dataset_name="gos")
    p.run(_events())
    assert create_models(p) == ["daily_events"]
    drop_models(p)
    p.run(_events(), refresh="drop_sources")
    assert create_models(p) == ["daily_events"]
    assert _rows(p, "SELECT day, events FROM {ds}.daily_events") == [(dt.date(2026, 3, 31), 1)]


def test_nothing_loaded_yet_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has not loaded anything yet; run a sync first"):
        create_models(_pipeline(tmp_path))


def test_pipeline_script_models_flag(make_sim: Callable[..., Any], tmp_path: Path) -> None:
    """`growthos_pipeline.py --models` creates the views after its sync and names the ones it
    could not make."""
    sim = make_sim(contacts=40, events=200)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({"SOURCES__GROWTHOS__BASE_URL": sim.base_url,
                "SOURCES__GROWTHOS__API_KEY": DEFAULT_KEY, "DLT_DATA_DIR": str(tmp_path / "dlt"),
                "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "job.duckdb"),
                "SOURCES__GROWTHOS__EVENTS_WINDOW_DAYS": "120",  # a few windows, not ~100
                "RUNTIME__DLTHUB_TELEMETRY": "false"})
    cmd = [sys.executable, str(SCRIPT), "--progress", "none", "--backfill-windows", "0",
           "--resources", "contacts,events", "--models"]
    done = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Created 2 views in growthos: contacts_current, daily_events" in done.stdout
    assert "skipped survey_nps: needs tables surveys, survey_responses, not loaded" in done.stderr
    with duckdb.connect(str(tmp_path / "job.duckdb"), read_only=True) as con:
        n = con.execute("SELECT SUM(events) FROM growthos.daily_events").fetchone()
    assert n is not None and n[0] == 200
