"""Sync GrowthOS into a warehouse (DuckDB by default).

    python pipelines/growthos_pipeline.py            # every resource, dlt config + environment
    python pipelines/growthos_pipeline.py --demo     # local GrowthOS server -> growthos.duckdb
    python pipelines/growthos_pipeline.py --resources contacts,events --start-date 2025-01-01

Configuration comes from dlt's usual places: `.dlt/config.toml`, `.dlt/secrets.toml` and the
environment (SOURCES__GROWTHOS__API_KEY, SOURCES__GROWTHOS__BASE_URL,
DESTINATION__DUCKDB__CREDENTIALS, DLT_DATA_DIR). Exit code 0 on success, 1 with a one-line
reason on failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# .dlt/config.toml turns dlt's telemetry off, but only when run from the project directory;
# these machines have no internet, so default to off wherever the job runs.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt

from growthos_source import growthos, sync
from growthos_source.cli_errors import one_line
from growthos_source.endpoints import ENDPOINTS
from growthos_source.models import create_models
from growthos_source.warehouse import DEFAULT_MEMORY_LIMIT, duckdb_destination

TABLES = [e.table for e in ENDPOINTS if not e.table.startswith("_")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--resources", help="comma-separated tables to sync (default: all except "
                   "opt-in ones). Known: " + ", ".join(TABLES))
    p.add_argument("--destination", default="duckdb", help="any dlt destination (default duckdb)")
    p.add_argument("--duckdb-memory-limit", default=DEFAULT_MEMORY_LIMIT,
                   help="cap on DuckDB's buffer pool, so memory stays flat however much is "
                   f"loaded (default {DEFAULT_MEMORY_LIMIT}; 'none': DuckDB's 80%% of RAM)")
    p.add_argument("--dataset-name", default="growthos", help="dataset/schema (default growthos)")
    p.add_argument("--pipeline-name", default="growthos", help="dlt pipeline name (default growthos)")
    p.add_argument("--start-date", help="first run reads from here (ISO date); default all history")
    p.add_argument("--end-date", help="exclusive end of a bounded backfill (ISO date)")
    p.add_argument("--deletes", choices=["mark", "remove"], help="vanished records: mark with "
                   "_deleted_at (default) or remove them")
    p.add_argument("--on-missing-scope", choices=["fail", "skip"],
                   help="a key lacking a resource's scope: fail (default) or skip the resource")
    p.add_argument("--progress", default="log",
                   choices=["log", "tqdm", "enlighten", "alive_progress", "none"],
                   help="dlt progress display (default log)")
    p.add_argument("--backfill-windows", type=int, default=8, help="load an event stream that is "
                   "behind in chunks of this many windows, each committed on its own, so an "
                   "interrupted backfill resumes where it stopped (default 8; 0: one run)")
    p.add_argument("--models", action="store_true", help="after the sync, create the analytics "
                   "views (contacts_current, survey_nps, daily_events, ...: docs/sql-models.md)")
    p.add_argument("--demo", action="store_true", help="start the local GrowthOS server with a "
                   "small seeded data set and sync it into growthos.duckdb")
    return p.parse_args(argv)


def source_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for name in ("start_date", "end_date", "deletes", "on_missing_scope"):
        value = getattr(args, name)
        if value is not None:
            kw[name] = value
    return kw


def build_source(args: argparse.Namespace, **extra: Any) -> Any:
    src = growthos(**{**source_kwargs(args), **extra})
    if args.resources:
        names = [r.strip() for r in args.resources.split(",") if r.strip()]
        unknown = sorted(set(names) - set(TABLES))
        if unknown:
            raise SystemExit(f"error: unknown resources {unknown}; known: {', '.join(TABLES)}")
        src = src.with_resources(*names)
    return src


def print_summary(result: Any) -> None:
    rows = {t: n for t, n in result.rows.items() if "__" not in t and not t.startswith("_")}
    print(f"\nLoaded {sum(rows.values())} rows into {len(rows)} tables:")
    for table in sorted(rows):
        print(f"  {table:<24} {rows[table]:>9}")
    if result.deletes_applied:
        print("Deletes applied: " + ", ".join(f"{t} {n}" for t, n in
                                              sorted(result.deletes_applied.items())))


def destination(args: argparse.Namespace, database: str | None = None) -> Any:
    """DuckDB (the file `database`, else the one dlt's config names) with a capped buffer pool,
    or the named dlt destination as configured."""
    if database is None and args.destination != "duckdb":
        return args.destination
    limit = None if args.duckdb_memory_limit.lower() in ("none", "0", "") else \
        args.duckdb_memory_limit
    return duckdb_destination(database, memory_limit=limit)


def run(args: argparse.Namespace) -> int:
    # dlt's own progress display, as keyword arguments for dlt.pipeline()
    progress: dict[str, Any] = {} if args.progress == "none" else {"progress": args.progress}
    if args.demo:
        from demo import DEMO_DB, run_demo  # pipelines/demo.py

        code = run_demo(args, build_source, print_summary, progress, destination)
        if args.models:
            print_models(dlt.pipeline(pipeline_name="growthos_demo", dataset_name=args.dataset_name,
                                      destination=destination(args, os.path.abspath(DEMO_DB))))
        return code
    pipeline = dlt.pipeline(pipeline_name=args.pipeline_name, destination=destination(args),
                            dataset_name=args.dataset_name, **progress)
    result = sync(pipeline, lambda **kw: build_source(args, **kw),
                  backfill_windows=args.backfill_windows or None, progress=print)
    print_summary(result)
    if args.models:
        print_models(pipeline)
    return 0


def print_models(pipeline: Any) -> None:
    """Create the analytics views; views whose tables were not loaded are logged as skipped."""
    made = create_models(pipeline)
    print(f"\nCreated {len(made)} views in {pipeline.dataset_name}: {', '.join(made)}")


class _QuietNullColumns(logging.Filter):
    """dlt warns once per load about every nullable field that was null in all rows of that
    load; for an API whose fields are often null that buries the warnings that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not receive any data during this load" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("GROWTHOS_LOG_LEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dlt").addFilter(_QuietNullColumns())
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("error: interrupted; the next run resumes from the last committed state",
              file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001  one line for the user; traceback in dlt trace
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
