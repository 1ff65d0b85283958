"""`growthos-sync reset TABLE...`: drop tables and their marks so the next sync reloads them.
`growthos-sync reset --pending`: clear a load package the warehouse refuses (refusals.py).

Uses dlt's drop (`dlt.pipeline.helpers.pipeline_drop`, what `dlt pipeline drop` runs): the
tables (with their nested tables) go from the warehouse and the schema, and the marks kept in the
source state under `marks.<table>` go with them, in one load that also stores the new state in
the destination, so a runner that starts empty does not bring the old marks back.
"""

from __future__ import annotations

import argparse

from dlt.pipeline.exceptions import PipelineNeverRan
from dlt.pipeline.helpers import pipeline_drop

from .. import run_lock
from ..warehouse import refusals
from . import common


def cmd_reset(args: argparse.Namespace) -> int:
    if args.pending:
        return _reset_pending(args)
    if not args.tables:
        raise SystemExit("error: name the tables to reload (growthos-sync reset contacts), or "
                         "--pending to clear a load package the warehouse refuses")
    tables = [t.strip() for name in args.tables for t in name.split(",") if t.strip()]
    unknown = sorted(set(tables) - set(common.TABLES))
    if unknown:
        raise SystemExit(f"error: unknown tables {', '.join(unknown)}; known: "
                         f"{', '.join(common.TABLES)}")
    p = common.pipeline(args)
    p.sync_destination()  # a runner that starts empty: the schema and state from the warehouse
    if p.has_pending_data:
        raise SystemExit("error: a previous run left load packages pending: run "
                         "`growthos-sync sync` first (it finishes them), then reset")
    try:
        drop = pipeline_drop(p, resources=tables,
                             state_paths=[f"marks.{t}" for t in tables])
    except PipelineNeverRan:
        raise SystemExit(f"error: pipeline {p.pipeline_name} has never run here or in "
                         "the warehouse: nothing to reset") from None
    dropped = sorted(drop.info["tables"])
    drop()
    print(f"Dropped tables: {', '.join(dropped) or 'none'}")
    print(f"Marks reset: {', '.join(tables)}. The next `growthos-sync` reloads them in full.")
    return 0


def _reset_pending(args: argparse.Namespace) -> int:
    p = common.pipeline(args)
    with run_lock.hold(p.working_dir, p.pipeline_name):
        done = refusals.set_aside(p)
    if done is None:
        print(f"Pipeline {p.pipeline_name}: no load package pending, nothing to clear.")
        return 0
    records = done.get("records") or {}
    print(f"Cleared pending load package(s) {', '.join(done['packages'])}; local state rewound "
          "to before them.")
    for table, rows in sorted(records.items()):
        print(f"Set aside from table {table}: {', '.join(r['id'] for r in rows)} "
              f"({done['reason']}); the next `growthos-sync` puts them in _growthos_rejects "
              "and loads the rest.")
    if not records:
        print("No refused record was identified: the next `growthos-sync` reads those tables "
              "again; if the warehouse refuses them again, fix the warehouse.")
    return 0
