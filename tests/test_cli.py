"""`growthos-sync` end to end: the installed command in its own process, started from a folder
that is not the project (`--config-dir`), against a local server; the warehouse is compared
with the server's truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
from cli_run import Project
from conftest import control, truth
from warehouse import assert_equals_truth

SIZE = {"contacts": 60, "events": 400}


def ledger(p: Project) -> list[dict[str, object]]:
    with duckdb.connect(str(p.db), read_only=True) as con:
        cur = con.execute("SELECT * FROM growthos._growthos_runs ORDER BY started_at, table_name")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def marks(p: Project, pipeline: str = "growthos") -> dict[str, object]:
    state = json.loads((p.data_dir / "pipelines" / pipeline / "state.json").read_text())
    return state["sources"]["growthos"]["marks"]  # type: ignore[no-any-return]


def test_sync_status_and_ledger_from_another_folder(make_sim, tmp_path: Path) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim, waitlist_ids=[])
    first = p.ok("sync", "--resources", "contacts,events")
    # Quiet: the summary table and nothing else; the DuckDB file lands in the project folder.
    assert first.stderr == ""
    n_contacts, n_events = len(truth(sim, "contacts")), len(truth(sim, "events"))
    assert first.stdout.splitlines()[0] == f"Loaded {n_contacts + n_events} rows into 2 tables."
    assert p.db.is_file() and not (p.elsewhere / "warehouse.duckdb").exists()
    assert assert_equals_truth(p.warehouse(), "contacts") == n_contacts
    assert assert_equals_truth(p.warehouse(), "events") == n_events

    rows = {r["table_name"]: r for r in ledger(p)}
    assert set(rows) == {"contacts", "events"}
    for table, n in (("contacts", n_contacts), ("events", n_events)):
        r = rows[table]
        assert r["status"] == "ok" and r["error"] is None and r["rows_loaded"] == n
        assert r["rows_rejected"] == 0 and r["requests"] >= 2 and r["mark_before"] is None
        assert r["mark_after"] and r["load_ids"] and r["command"] == "sync"
    assert rows["contacts"]["run_id"] == rows["events"]["run_id"]

    # Options that cannot take effect say so: a start date on tables that have marks, a table
    # of objects the API cannot list without ids.
    control(sim, "POST", "mutate", json={"advance": "1d", "events": {"create": 12}})
    again = p.ok("sync", "--resources", "contacts,events,waitlists", "--start-date", "2020-01-01")
    err = again.stderr
    assert "--start-date 2020-01-01 has no effect on contacts, events" in err
    assert "backfill" in err
    assert "waitlists: skipped, no ids configured" in err and "waitlist_ids" in err
    new = {r["table_name"]: r for r in ledger(p)[2:]}
    assert new["events"]["rows_loaded"] == 12 and new["waitlists"]["rows_loaded"] == 0
    assert new["events"]["mark_before"] == rows["events"]["mark_after"]
    assert new["events"]["mark_after"] > new["events"]["mark_before"]  # type: ignore[operator]
    assert_equals_truth(p.warehouse(), "events")

    status = p.ok("status").stdout
    lines = {line.split()[0]: line.split() for line in status.splitlines() if line.split()}
    assert f"{n_events + 12:,}" in lines["events"]
    assert str(len(truth(sim, "contacts"))) in lines["contacts"]
    assert "load packages pending: no" in status
    unknown = p.run("sync", "--resources", "contacts,nope")
    assert unknown.returncode == 1 and unknown.stderr.strip().startswith(
        "error: unknown tables nope; known: contacts,")


def test_failure_is_one_error_line_and_a_ledger_row(make_sim, tmp_path: Path) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim, base_url="http://127.0.0.1:9/v1", max_attempts=3,
                backoff_base=0.01, backoff_max=0.02)
    proc = p.run("--resources", "contacts")  # no subcommand: sync
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot reach 127.0.0.1") and "details:" in lines[0]
    log = Path(lines[0].rsplit("details: ", 1)[1].rstrip(")")).read_text()
    assert "Traceback" in log and "retry 1/2" in log
    [row] = ledger(p)
    assert row["status"] == "failed" and row["table_name"] == "contacts"
    assert row["requests"] == 3 and row["retries"] == 2 and row["rows_loaded"] == 0
    assert str(row["error"]).startswith("cannot reach 127.0.0.1")


def test_reset_drops_table_and_marks_so_the_next_sync_reloads(make_sim, tmp_path: Path) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim)
    p.ok("sync", "--resources", "contacts,surveys")
    assert "contacts" in marks(p)
    out = p.ok("reset", "contacts").stdout
    assert "Dropped tables: contacts" in out and "contacts__tags" in out
    assert "contacts" not in marks(p) and "surveys" in marks(p)
    with duckdb.connect(str(p.db), read_only=True) as con:
        left = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'growthos'").fetchall()}
    assert "contacts" not in left and "surveys" in left
    p.ok("sync", "--resources", "contacts,surveys")
    last = {r["table_name"]: r for r in ledger(p)[-2:]}
    assert last["contacts"]["rows_loaded"] == len(truth(sim, "contacts")) and last["surveys"]["rows_loaded"] == 0
    assert_equals_truth(p.warehouse(), "contacts")


def test_backfill_loads_older_history_without_moving_the_nightly_marks(
        make_sim, tmp_path: Path) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim)
    stamps = sorted(e["timestamp"] for e in truth(sim, "events"))
    middle = stamps[len(stamps) // 2][:10]
    p.ok("sync", "--resources", "contacts,events", "--start-date", middle)
    nightly = marks(p)
    loaded = duckdb.connect(str(p.db), read_only=True)
    n_nightly = loaded.execute("SELECT COUNT(*) FROM growthos.events").fetchone()[0]
    loaded.close()
    assert 0 < n_nightly < len(stamps)

    # From the first day of the data: few empty event windows to walk.
    first_day = min([stamps[0]] + [c[k] for c in truth(sim, "contacts")
                                   for k in ("created_at", "updated_at")])[:10]
    proc = p.ok("backfill", "--start-date", first_day, "--resources", "contacts,events",
                "--progress", "bar", "--backfill-windows", "1")
    assert "the nightly marks are not touched" in proc.stdout
    assert "events: backfilled up to" in proc.stderr
    assert "events backfill: 1/" in proc.stderr  # not a terminal: one line per chunk
    assert marks(p) == nightly
    assert assert_equals_truth(p.warehouse(), "events") == len(stamps)
    assert_equals_truth(p.warehouse(), "contacts")
    # Run again (e.g. after an interruption): resumes, loads nothing twice.
    p.ok("backfill", "--start-date", first_day, "--resources", "contacts,events",
         "--backfill-windows", "1")
    assert_equals_truth(p.warehouse(), "events")
    again = p.ok("sync", "--resources", "contacts,events")
    assert again.stdout.splitlines()[0] == "Loaded 0 rows."
    commands = {r["command"] for r in ledger(p)}
    assert commands == {"sync", "backfill"}


def test_demo_runs_from_any_folder(tmp_path: Path, make_sim) -> None:
    p = Project(tmp_path, make_sim(**SIZE))
    out = p.ok("demo", "--contacts", "80", "--events", "500", config=False).stdout
    assert "Loaded " in out and "After one simulated day" in out and "Example query" in out
    assert (p.elsewhere / "growthos_demo.duckdb").is_file()
    # The day's events went through the Ingest API, late ones too, and every late one loaded.
    late = re.search(r"^Late events: (\d+) sent with a timestamp in the past \(.*\); the "
                     r"incremental run loaded (\d+) of them, (\d+) dated before", out, re.MULTILINE)
    assert late and int(late[1]) > 0 and late[2] == late[1] and int(late[3]) > 0, out


def test_subcommand_found_after_common_options() -> None:
    from growthos_source.cli import _normalize

    assert _normalize(["--config-dir", "d", "status"]) == ["status", "--config-dir", "d"]
    assert _normalize(["--resources", "contacts"]) == ["sync", "--resources", "contacts"]
    assert _normalize(["--demo", "-v"]) == ["demo", "-v"]
    assert _normalize([]) == ["sync"]
