"""`growthos_pipeline.py --demo`: a real sync from a local GrowthOS server into growthos.duckdb."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import dlt
import duckdb
import httpx

from growthos_sim import DEFAULT_KEY, SimServer
from growthos_source import sync

# Not growthos.duckdb: DuckDB cannot bind `growthos.<table>` when the catalog (file) and the
# dataset share a name.
DEMO_DB = "growthos_demo.duckdb"
EXAMPLE_SQL = """SELECT s.name AS survey, COUNT(*) AS responses, ROUND(AVG(r.score), 2) AS avg_score
FROM growthos.survey_responses r JOIN growthos.surveys s ON s.id = r.survey_id
GROUP BY s.name ORDER BY responses DESC"""


def run_demo(args: argparse.Namespace, build_source: Callable[..., Any],
             print_summary: Callable[[Any], None], progress: dict[str, Any],
             destination: Callable[..., Any]) -> int:
    print("Starting the local GrowthOS server (seed 7, 2,000 contacts, 20,000 events)...")
    with SimServer(seed=7, contacts=2000, events=20_000) as sim:
        info = sim.info()
        ids = {k: info[k] for k in ("waitlist_ids", "funnel_ids", "cohort_ids")}
        # An absolute path: dlt would otherwise resolve a relative one against the directory
        # recorded in the pipeline's state by an earlier demo run, wherever that was.
        pipeline = dlt.pipeline(pipeline_name="growthos_demo",
                                destination=destination(args, os.path.abspath(DEMO_DB)),
                                dataset_name=args.dataset_name, **progress)
        print(f"Syncing {sim.base_url} -> {DEMO_DB} (dataset {args.dataset_name})")
        result = sync(pipeline, build_source(args, api_key=DEFAULT_KEY, base_url=sim.base_url,
                                             **ids), refresh="drop_sources")
        print_summary(result)

        httpx.post(f"{sim.url}/_sim/mutate", json={"advance": "1d"}, timeout=60)
        result = sync(pipeline, build_source(args, api_key=DEFAULT_KEY, base_url=sim.base_url,
                                             **ids))
        print("\nAfter one simulated day of activity, the incremental run loaded:")
        print_summary(result)

    sql = EXAMPLE_SQL.replace("growthos.", f"{args.dataset_name}.")
    print(f"\nExample query ({DEMO_DB}):\n{sql}\n")
    with duckdb.connect(DEMO_DB, read_only=True) as con:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        print(" | ".join(cols))
        for row in cur.fetchall():
            print(" | ".join(str(v) for v in row))
    return 0
