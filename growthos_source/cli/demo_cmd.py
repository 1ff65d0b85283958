"""`growthos-sync demo`: a real sync from a local GrowthOS server into growthos_demo.duckdb.

Starts the local server (growthos_sim) with a small seeded data set, syncs everything, lets one
simulated day pass, syncs again (incremental) and runs an example query.
"""

from __future__ import annotations

import argparse
import os

import dlt
import duckdb
import httpx

from .. import growthos, sync
from . import common
from .progress import dlt_collector

# Not growthos.duckdb: DuckDB cannot bind `growthos.<table>` when the catalog (file) and the
# dataset share a name.
DEMO_DB = "growthos_demo.duckdb"
EXAMPLE_SQL = """SELECT s.name AS survey, COUNT(*) AS responses, ROUND(AVG(r.score), 2) AS avg_score
FROM growthos.survey_responses r JOIN growthos.surveys s ON s.id = r.survey_id
GROUP BY s.name ORDER BY responses DESC"""


def cmd_demo(args: argparse.Namespace) -> int:
    # Only the demo needs the local server: every other command starts without importing it.
    from growthos_sim import DEFAULT_KEY, SimServer

    print(f"Starting the local GrowthOS server (seed 7, {args.contacts:,} contacts, "
          f"{args.events:,} events)...")
    with SimServer(seed=7, contacts=args.contacts, events=args.events) as sim:
        info = sim.info()
        fixed = {"api_key": DEFAULT_KEY, "base_url": sim.base_url,
                 **{k: info[k] for k in ("waitlist_ids", "funnel_ids", "cohort_ids")}}
        # An absolute path: dlt would otherwise resolve a relative one against the directory
        # recorded in the pipeline's state by an earlier demo run, wherever that was.
        collector = dlt_collector(getattr(args, "progress", "none"))
        kw = {} if collector is None else {"progress": collector}
        pipeline = dlt.pipeline(pipeline_name="growthos_demo",
                                destination=common.destination(args, os.path.abspath(DEMO_DB)),
                                dataset_name=args.dataset_name, **kw)
        print(f"Syncing {sim.base_url} -> {DEMO_DB} (dataset {args.dataset_name})")
        result = sync(pipeline, growthos(**fixed), refresh="drop_sources", command="demo")
        common.print_summary(result)

        httpx.post(f"{sim.url}/_sim/mutate", json={"advance": "1d"}, timeout=60)
        result = sync(pipeline, growthos(**fixed), command="demo")
        print("\nAfter one simulated day of activity, the incremental run:")
        common.print_summary(result)
        if getattr(args, "models", False):
            common.print_models(pipeline)

    sql = EXAMPLE_SQL.replace("growthos.", f"{args.dataset_name}.")
    print(f"\nExample query ({DEMO_DB}):\n{sql}\n")
    with duckdb.connect(DEMO_DB, read_only=True) as con:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    from .output import table

    print(table(rows, cols))
    return 0
