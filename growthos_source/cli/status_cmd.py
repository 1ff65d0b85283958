"""`growthos-sync status`: per table, the last successful run, mark, rows in the warehouse and
how far the event stream is behind the API; and whether a run is in progress or left packages
pending."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from typing import Any

import dlt

from ..endpoints import BY_TABLE
from ..ledger import RUNS_TABLE, newest_mark, source_marks
from ..warehouse import WarehouseError, ops
from . import common
from .output import table

logger = logging.getLogger("growthos_source")


def cmd_status(args: argparse.Namespace) -> int:
    p = common.pipeline(args)
    unreadable: list[str] = []  # why the warehouse could not be read: shown, never hidden
    try:
        ops.restore_state(p)  # a runner that starts empty: the state from the warehouse
    except WarehouseError as e:
        unreadable.append(str(e))
    marks = source_marks(p)
    schema_tables: set[str] = set(p.default_schema.tables) if p.default_schema_name else set()
    last_ok = _last_ok_runs(p, unreadable) if RUNS_TABLE in schema_tables else {}
    lines = []
    for t in common.TABLES:
        if t not in schema_tables and t not in marks:
            continue
        lines.append({"table": t, "last successful run": last_ok.get(t),
                      "mark": _short(newest_mark(marks.get(t))),
                      "rows": _count(p, t, unreadable) if t in schema_tables else None,
                      "behind API": _events_lag(marks.get(t)) if t == "events" else None})
    for why in dict.fromkeys(unreadable):
        print(f"warning: the warehouse was not read, rows and runs are unknown (?): {why}")
    if not lines:
        print(f"Pipeline {p.pipeline_name}: no tables loaded yet (run `growthos-sync`).")
    else:
        print(f"Pipeline {p.pipeline_name}, dataset {p.dataset_name}:")
        print(table(lines, ["table", "last successful run", "mark", "rows", "behind API"]))
    print(_in_progress(p))
    return 0


def _short(value: str | None) -> str | None:
    return None if value is None else value[:19].replace("T", " ")


def _last_ok_runs(p: dlt.Pipeline, unreadable: list[str]) -> dict[str, str]:
    try:
        rows = ops.read(p, f"SELECT table_name, MAX(finished_at) FROM {{{RUNS_TABLE}}} WHERE "
                        "status = 'ok' AND pipeline_name = {name} GROUP BY table_name",
                        RUNS_TABLE, name=p.pipeline_name)
    except WarehouseError as e:
        unreadable.append(str(e))
        return {}
    return {str(t): str(v)[:19] for t, v in rows or [] if v is not None}


def _count(p: dlt.Pipeline, t: str, unreadable: list[str]) -> int | str | None:
    """Live rows of table `t`; None when it was never loaded, "?" when unreadable."""
    cond = " WHERE _deleted_at IS NULL" if "_deleted_at" in BY_TABLE[t].columns else ""
    try:
        rows = ops.read(p, f"SELECT COUNT(*) FROM {{{t}}}{cond}", t)
    except WarehouseError as e:
        unreadable.append(str(e))
        return "?"
    return int(rows[0][0]) if rows else None


def _events_lag(marks: Any) -> str | None:
    """How far the newest loaded event is behind the API's newest (one API request)."""
    mark = newest_mark(marks)
    if mark is None:
        return None
    try:
        from .. import timeline
        from ..http import GrowthOSClient
        from ..source import DEFAULT_BASE_URL

        key: Any = dlt.secrets.get("sources.growthos.api_key")
        base = common.configured("base_url") or DEFAULT_BASE_URL
        with GrowthOSClient(str(base), str(key), max_attempts=2) as client:
            newest = timeline.newest(client, BY_TABLE["events"].path)
    except Exception as e:  # noqa: BLE001  status still shows the rest
        logger.info("API not asked for its newest event: %s", e)
        return "?"
    if newest is None:
        return None
    from ..incremental import parse_ts

    lag = max(dt.timedelta(0), newest - parse_ts(mark))
    return _duration(lag)


def _duration(d: dt.timedelta) -> str:
    s = int(d.total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _in_progress(p: dlt.Pipeline) -> str:
    pending = p.has_pending_data
    running = _run_lock(p)
    parts = []
    if running is not None:
        parts.append(f"run in progress: {'yes' if running else 'no'}")
    parts.append("load packages pending: " + ("yes (the next sync finishes them)" if pending
                                              else "no"))
    return "; ".join(parts)


def _run_lock(p: dlt.Pipeline) -> bool | None:
    """Whether a process holds the pipeline's run lock (run_lock.py)."""
    from ..run_lock import lock_state

    return lock_state(p.working_dir).held
