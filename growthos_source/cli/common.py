"""What every subcommand shares: the pipeline, the destination, the source, the summary."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import dlt

from ..endpoints import BY_TABLE, ENDPOINTS
from ..ledger import source_marks
from ..warehouse import DEFAULT_MEMORY_LIMIT, duckdb_destination
from .output import table

logger = logging.getLogger("growthos_source")
TABLES = [e.table for e in ENDPOINTS if not e.table.startswith("_")]
# Tables of objects the API cannot list: loaded only for the ids configured.
IDS_ARGS = {e.table: e.ids_arg for e in ENDPOINTS if e.ids_arg}


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every subcommand takes."""
    p.add_argument("--config-dir", metavar="DIR", help="folder with config.toml/secrets.toml "
                   "(default: ./.dlt if present, else dlt's global folder); relative paths in "
                   "it resolve against its parent folder")
    p.add_argument("--destination", default="duckdb", help="any dlt destination (default "
                   "duckdb); delta: the filesystem destination with Delta tables "
                   "(DESTINATION__FILESYSTEM__BUCKET_URL)")
    p.add_argument("--duckdb-memory-limit", default=DEFAULT_MEMORY_LIMIT,
                   help=f"cap on DuckDB's buffer pool (default {DEFAULT_MEMORY_LIMIT}; 'none': "
                   "DuckDB's 80%% of RAM)")
    p.add_argument("--dataset-name", default="growthos", help="dataset/schema (default growthos)")
    p.add_argument("--pipeline-name", default="growthos",
                   help="dlt pipeline name (default growthos)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print retries and dlt's log lines too")
    p.add_argument("--log-file", help="where the detailed log goes (default: growthos-sync.log "
                   "in dlt's data folder)")


def destination(args: argparse.Namespace, database: str | None = None) -> Any:
    """DuckDB (the file `database`, else the one dlt's config names) with a capped buffer pool,
    or the named dlt destination as configured."""
    if database is None and args.destination != "duckdb":
        return "filesystem" if args.destination == "delta" else args.destination
    limit = None if args.duckdb_memory_limit.lower() in ("none", "0", "") else \
        args.duckdb_memory_limit
    return duckdb_destination(database, memory_limit=limit)


def pipeline(args: argparse.Namespace, name: str | None = None,
             progress: Any = None) -> dlt.Pipeline:
    kw: dict[str, Any] = {} if progress is None else {"progress": progress}
    p: dlt.Pipeline = dlt.pipeline(pipeline_name=name or args.pipeline_name,
                                   destination=destination(args),
                                   dataset_name=args.dataset_name, **kw)
    return p


def selected_tables(args: argparse.Namespace) -> list[str] | None:
    """`--resources a,b` as a list (None: the source's defaults). Unknown names exit."""
    if not getattr(args, "resources", None):
        return None
    names = [r.strip() for r in args.resources.split(",") if r.strip()]
    unknown = sorted(set(names) - set(TABLES))
    if unknown:
        raise SystemExit(f"error: unknown tables {', '.join(unknown)}; known: "
                         f"{', '.join(TABLES)}")
    return names


def configured(name: str) -> Any:
    """A `sources.growthos` setting as dlt resolves it (environment, then the toml files)."""
    for key in (f"sources.growthos.growthos.{name}", f"sources.growthos.{name}"):
        value: Any = dlt.config.get(key)
        if value not in (None, "", [], "[]"):  # the environment gives "[]" as a string
            return value
    return None


def warn_unused_ids(tables: list[str] | None, kwargs: dict[str, Any]) -> None:
    """Say which tables load nothing because no ids are configured for them."""
    wanted = [t for t in IDS_ARGS if tables is None or t in tables]
    missing = [t for t in wanted if not kwargs.get(IDS_ARGS[t]) and not configured(IDS_ARGS[t])]
    if missing:
        args = sorted({IDS_ARGS[t] for t in missing})
        logger.warning("%s: skipped, no ids configured (the API cannot list them): set %s "
                       "under [sources.growthos]", ", ".join(missing), " / ".join(args))


def warn_start_date_ignored(p: dlt.Pipeline, start_date: str | None,
                            tables: list[str] | None) -> None:
    """`--start-date` only applies to a table's first run: say which tables ignore it."""
    if not start_date:
        return
    marks = source_marks(p)
    have = sorted(t for t, v in marks.items() if v and (tables is None or t in tables)
                  and t in BY_TABLE)
    if have:
        logger.warning("--start-date %s has no effect on %s: they already have marks and "
                       "continue from them; to load older history run `growthos-sync backfill "
                       "--start-date %s --end-date ...`", start_date, ", ".join(have),
                       start_date)


def print_models(p: dlt.Pipeline) -> None:
    """Create the analytics views (docs/sql-models.md); the ones whose tables were not loaded
    are logged as skipped."""
    from ..models import create_models

    made = create_models(p)
    print(f"\nCreated {len(made)} views in {p.dataset_name}: {', '.join(made)}")


def print_summary(result: Any, header: str = "Loaded") -> None:
    """One table: rows per table this run (nested tables are part of their parent's rows)."""
    rows = {t: n for t, n in result.rows.items() if t in BY_TABLE}
    total = sum(rows.values())
    if not rows:
        print(f"{header} 0 rows.")
        return
    print(f"{header} {total:,} rows into {len(rows)} tables.")
    deleted = result.deletes_applied or {}
    lines = [{"table": t, "rows": rows[t], "deleted": deleted.get(t, 0)} for t in sorted(rows)]
    cols = ["table", "rows"] + (["deleted"] if deleted else [])
    print(table(lines, cols))
