"""`growthos-sync sync` (the nightly job) and `growthos-sync backfill` (a bounded history load).

A backfill runs as its own dlt pipeline (`<pipeline>_backfill_<start>_<end>`) into the same
dataset: its marks are its own, so the nightly pipeline's marks never move, backwards or
forwards, and an interrupted backfill resumes from where it stopped when run again with the
same dates. Merge tables take the backfilled rows by primary key. The event stream is appended,
so a backfill only reads events older than the oldest event another pipeline loaded: its end
is clamped there and nothing is loaded twice.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

import dlt

from .. import growthos, sync
from ..endpoints import BY_TABLE
from ..errors import ConfigurationError
from ..incremental import iso_z, parse_ts
from ..warehouse import ops
from . import common
from .progress import ChunkProgress, dlt_collector

logger = logging.getLogger("growthos_source")


def add_sync_options(p: argparse.ArgumentParser, backfill: bool = False) -> None:
    p.add_argument("--resources", help="comma-separated tables (default: all except opt-in "
                   "ones). Known: " + ", ".join(common.TABLES))
    if backfill:
        p.add_argument("--start-date", required=True, help="load history from here (ISO date)")
        p.add_argument("--end-date", help="exclusive end (ISO date; default: now)")
    else:
        p.add_argument("--start-date", help="a table's first run reads from here (ISO date); "
                       "default all history. Tables that already have marks ignore it: use "
                       "`backfill` for older history")
        p.add_argument("--end-date", help="exclusive end (ISO date)")
    p.add_argument("--deletes", choices=["mark", "remove"], help="vanished records: mark with "
                   "_deleted_at (default) or remove them")
    p.add_argument("--on-missing-scope", choices=["fail", "skip"],
                   help="a key lacking a table's scope: fail (default) or skip the table")
    p.add_argument("--history", help="comma-separated tables to keep every version of "
                   "(SCD2; supported: contacts -> contacts_history)")
    p.add_argument("--progress", default="none", choices=["none", "log", "bar", "tqdm",
                                                          "enlighten", "alive_progress"],
                   help="none (default), log, or bar (event windows done/total, rows/s, ETA)")
    p.add_argument("--wait-for-lock", type=float, default=0.0, metavar="SECONDS",
                   help="another run of this pipeline in progress: wait up to SECONDS for it "
                   "(default 0: exit at once with code 75)")
    p.add_argument("--models", action="store_true", help="after the sync, create the analytics "
                   "views (contacts_current, survey_nps, daily_events, ...: docs/sql-models.md)")
    p.add_argument("--backfill-windows", type=int, default=8, help="load an event stream that "
                   "is behind in chunks of this many windows, each committed on its own, so an "
                   "interrupted load resumes where it stopped (default 8; 0: one run)")


def source_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for name in ("start_date", "end_date", "deletes", "on_missing_scope"):
        value = getattr(args, name, None)
        if value is not None:
            kw[name] = value
    if getattr(args, "history", None):
        kw["history"] = [t.strip() for t in args.history.split(",") if t.strip()]
    return kw


def factory(args: argparse.Namespace, tables: list[str] | None,
            fixed: dict[str, Any]) -> Any:
    """A source factory for sync(): the configured source, restricted to `tables`."""
    def build(**kw: Any) -> Any:
        src = growthos(**{**fixed, **kw})
        if tables is not None:
            # The history tables ride on their table's selection.
            extra = [f"{t}_history" for t in fixed.get("history", []) if t in tables]
            src = src.with_resources(*tables, *extra)
        return src
    return build


def run(args: argparse.Namespace, pipeline: dlt.Pipeline, kw: dict[str, Any],
        tables: list[str] | None, command: str) -> int:
    common.warn_unused_ids(tables, kw)
    with ChunkProgress(args.progress) as bar:
        result = sync(pipeline, factory(args, tables, kw),
                      backfill_windows=args.backfill_windows or None,
                      progress=bar.callback(), command=command,
                      table_format="delta" if args.destination == "delta" else None,
                      wait_for_lock=args.wait_for_lock)
    common.print_summary(result)
    if args.models:
        common.print_models(pipeline)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    tables = common.selected_tables(args)
    kw = source_kwargs(args)
    p = common.pipeline(args, progress=dlt_collector(args.progress))
    common.warn_start_date_ignored(p, args.start_date, tables)
    return run(args, p, kw, tables, "sync")


def _slug(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "", value)[:15]


def cmd_backfill(args: argparse.Namespace) -> int:
    tables = common.selected_tables(args)
    kw = source_kwargs(args)
    start = iso_z(_date(args.start_date, "--start-date"))
    end = iso_z(_date(args.end_date, "--end-date")) if args.end_date else None
    if end is not None and end <= start:
        raise ConfigurationError(f"--start-date {args.start_date} must be before --end-date "
                                 f"{args.end_date}")
    name = f"{args.pipeline_name}_backfill_{_slug(start)}_{_slug(end or 'now')}"
    p = common.pipeline(args, name=name, progress=dlt_collector(args.progress))
    wanted = tables if tables is not None else [t for t in common.TABLES
                                                if not BY_TABLE[t].opt_in]
    if "events" in wanted:
        oldest = _oldest_other_event(p)
        if oldest is not None and (end is None or oldest < end):
            if oldest <= start:
                logger.warning("events: not backfilled, the warehouse already holds events "
                               "from %s on (before --start-date)", oldest)
                wanted = [t for t in wanted if t != "events"]
            else:
                # Events are appended: stop where the events already loaded begin.
                logger.warning("events: backfilled up to %s, where the events already loaded "
                               "begin", oldest)
                kw["end_date"] = oldest
                if any(t != "events" for t in wanted) and end is not None:
                    logger.info("other tables end at %s", end)
    if not wanted:
        print("Nothing to backfill.")
        return 0
    kw.pop("history", None)  # a bounded run cannot tell deletes: history is left as it is
    print(f"Backfilling {start} .. {kw.get('end_date') or end or 'now'} "
          f"(pipeline {name}; the nightly marks are not touched)")
    return run(args, p, kw, wanted, "backfill")


def _date(value: str, option: str) -> Any:
    try:
        return parse_ts(value)
    except ValueError:
        raise ConfigurationError(f"{option} {value!r} is not an ISO 8601 date: use e.g. "
                                 "2025-01-31") from None


def _oldest_other_event(p: dlt.Pipeline) -> str | None:
    """The oldest event loaded by any pipeline but this one (None: no events table yet).
    A warehouse that cannot be read raises WarehouseError (the command's one error line)."""
    rows = ops.read(p, "SELECT MIN(e.timestamp) FROM {events} e WHERE e._dlt_load_id NOT IN "
                    "(SELECT s._dlt_load_id FROM {_dlt_pipeline_state} s WHERE "
                    "s.pipeline_name = {name})", "events", "_dlt_pipeline_state",
                    any_pipeline=True, name=p.pipeline_name)
    value = rows[0][0] if rows else None
    return None if value is None else iso_z(parse_ts(value))
