"""`growthos-sync demo`: a real sync from a local GrowthOS server into growthos_demo.duckdb.

Starts the local server (growthos_sim) with a small seeded data set, syncs everything, lets one
simulated day pass (its events sent through the server's Ingest API, late ones included), syncs
again (incremental), says how many of the late events that run loaded, and runs an example query.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

import dlt
import duckdb
import httpx

from .. import growthos, sync
from . import common
from .progress import dlt_collector

if TYPE_CHECKING:  # only the demo needs the local server; other commands never import it
    from growthos_sim import SimServer
    from growthos_sim.activity import SentDay

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
        pipeline = dlt.pipeline(pipeline_name=args.pipeline_name,
                                destination=common.destination(args, os.path.abspath(DEMO_DB)),
                                dataset_name=args.dataset_name, **kw)
        print(f"Syncing {sim.base_url} -> {DEMO_DB} (dataset {args.dataset_name})")
        result = sync(pipeline, growthos(**fixed), refresh="drop_sources", command="demo")
        common.print_summary(result)

        sent = _one_day(sim)
        newest_before = _newest_event(args.dataset_name)
        result = sync(pipeline, growthos(**fixed), command="demo")
        print("\nAfter one simulated day (its events sent to the Ingest API), the incremental "
              "run:")
        common.print_summary(result)
        print(_late_line(sent, args.dataset_name, newest_before))
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


def _one_day(sim: SimServer) -> SentDay:
    """A day of activity: contacts, surveys, referrals... changed by the server's `/_sim/mutate`
    (an ordinary day, without its events), and the day's events sent by a client through the
    Ingest API, some of them late (a `timestamp` 3 s to 5 days in the past), then processed."""
    from growthos_sim.activity import send_day
    from growthos_sim.mutate import default_day

    plan = {t: a for t, a in default_day(sim.world, 1).items() if t != "events"}
    httpx.post(f"{sim.url}/_sim/mutate", json={"advance": "1d", **plan},
               timeout=60).raise_for_status()
    return send_day(sim.base_url, settle=True)


def _newest_event(dataset: str) -> object:
    with duckdb.connect(DEMO_DB, read_only=True) as con:
        row = con.execute(f'SELECT MAX("timestamp") FROM "{dataset}".events').fetchone()
    return row[0] if row else None


def _late_line(sent: SentDay, dataset: str, newest_before: object) -> str:
    """How many of the late events sent the warehouse now holds, and how many of those are
    dated before the first run's newest event (where an incremental walk never looks)."""
    ids = sent.late_message_ids
    with duckdb.connect(DEMO_DB, read_only=True) as con:
        marks = ", ".join("?" * len(ids)) or "NULL"
        loaded, behind = con.execute(
            f'SELECT COUNT(*), COUNT(*) FILTER (WHERE "timestamp" < ?) FROM "{dataset}".events '
            f"WHERE message_id IN ({marks})", [newest_before, *ids]).fetchone() or (0, 0)
    ages = ", ".join(f"{n} by {age}" for age, n in sent.late.items())
    return (f"Late events: {len(ids)} sent with a timestamp in the past ({ages}); the "
            f"incremental run loaded {loaded} of them, {behind} dated before the first run's "
            "newest event.")
