"""Rate-limited backfill of the event stream: our connector against dlt's generic rest_api source.

    python benchmarks/connector_backfill.py [--events 1000000] [--contacts 200000]
        [--latency-ms 50] [--plan scale] [--peer-events N] [--skip-peer]
        [--backfill-windows N] [--destination duckdb,postgres,delta]

Starts `python -m growthos_sim` on 127.0.0.1 as a separate process, then for each contender
resets the server (same seed, same data), backfills the events into a fresh DuckDB file and
prints wall time (start to rows loaded), rows (checked with COUNT(*) against the server's event
count), rows/s, % of the ceiling (plan req/s x 100 rows), requests and % answered 429, and the
extract / normalize / load seconds of dlt's trace.

`--destination` runs ours on each listed destination in turn (same server, reset between
runs) and prints them side by side: `duckdb` (a fresh file), `postgres` (a throwaway server on
127.0.0.1 started from Debian's binaries, as the tests do, or `--postgres-url`), `delta` (Delta
tables in a fresh `file://` bucket). Rows are counted in each warehouse with its own client.

`--peer-events N` runs the rest_api peer on a smaller data set of N events (the server is reset
with events=N for it), because at dlt's defaults it is far slower; its rows/s is still comparable.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import (
    PAGE,
    PLAN_RPS,
    Measured,
    Server,
    counted,
    machine,
    ours_events,
    ours_events_factory,
    peer_events,
    rate_profile,
    record_run_steps,
    run_events_backfill,
    run_ours,
    run_ours_chunked,
    run_peer,
    step_seconds,
    steps_text,
    table,
)

DESTINATIONS = ("duckdb", "postgres", "delta")


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    """A database URL: `given`, or a fresh database on a throwaway local server."""
    if given:
        yield given
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from postgres_server import PostgresServer  # tests/postgres_server.py

    server = PostgresServer().start()
    try:
        yield server.create_database("bench")
    finally:
        server.stop()


def run_on(srv: Any, kind: str, pg_url: str | None, windows: int | None) -> Measured:
    """Reset the server and backfill the events with our sync into a fresh `kind` warehouse."""
    import dlt

    from growthos_source import sync
    from growthos_source.warehouse import duckdb_destination

    expected = int(srv.reset()["events"])
    tmp = Path(tempfile.mkdtemp(prefix="gos_bench_dest_"))
    try:
        dest: Any = {"duckdb": lambda: duckdb_destination(str(tmp / "bench.duckdb")),
                     "postgres": lambda: dlt.destinations.postgres(pg_url),
                     "delta": lambda: dlt.destinations.filesystem((tmp / "lake").as_uri())}[kind]()
        record_run_steps()
        pipeline = dlt.pipeline(pipeline_name=f"bench_{kind}", pipelines_dir=str(tmp / "p"),
                                destination=dest, dataset_name="growthos")
        fmt = "delta" if kind == "delta" else None
        source: Any = (ours_events_factory(srv.base_url) if windows
                       else ours_events(srv.base_url))
        m, _ = counted(srv, kind, lambda: sync(pipeline, source, table_format=fmt,
                                               backfill_windows=windows))
        from growthos_source.warehouse import ops

        rows = ops.read(pipeline, "SELECT COUNT(*) FROM {events}", "events")
        m.rows = int(rows[0][0]) if rows else 0
        m.steps = step_seconds(pipeline)
        m.extra["expected"] = expected
        return m
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_destinations(args: argparse.Namespace, ceiling: int) -> int:
    kinds = [k.strip() for k in args.destination.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(DESTINATIONS))
    if unknown:
        raise SystemExit(f"error: unknown destinations {unknown}; known: {', '.join(DESTINATIONS)}")
    results = []
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=args.contacts,
                events=args.events, seed=args.seed) as srv, \
            postgres_url(args.postgres_url if "postgres" in kinds else "unused") as pg:
        for kind in kinds:
            print(f"running: ours -> {kind} ...", flush=True)
            results.append(run_on(srv, kind, pg, args.backfill_windows))
    rows = []
    for m in results:
        ok = "yes" if m.rows == m.extra["expected"] else f"NO ({m.extra['expected']:,})"
        rows.append([m.name, m.seconds, m.rows, ok, m.rows_per_s,
                     f"{100 * m.rows_per_s / ceiling:.1f}%", m.requests,
                     f"{m.throttled} ({m.pct_429:.2f}%)", steps_text(m.steps)])
    table(["destination", "wall s", "rows", "= server", "rows/s", "% ceiling", "requests",
           "429s", "extract/normalize/load s"], rows,
          title=f"Rate-limited events backfill per destination: {args.events:,} events, plan "
                f"{args.plan} ({ceiling:,} rows/s ceiling), latency {args.latency_ms} ms"
                + (f", chunks of {args.backfill_windows} windows" if args.backfill_windows
                   else ""))
    print("target: each >= 90% of the ceiling end to end")
    return 0 if all(m.rows == m.extra["expected"] for m in results) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--contacts", type=int, default=200_000)
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--plan", default="scale", choices=[k for k, v in PLAN_RPS.items() if v])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--peer-events", type=int, help="run the peer on N events (default: --events)")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--backfill-windows", type=int, metavar="N",
                   help="also run ours as sync(..., backfill_windows=N) (chunks of N windows)")
    p.add_argument("--destination", help="run ours on these destinations side by side "
                   f"(comma-separated: {', '.join(DESTINATIONS)}) instead of ours vs the peer")
    p.add_argument("--postgres-url", help="with --destination postgres: this database instead "
                   "of a throwaway local server")
    args = p.parse_args()
    ceiling = PLAN_RPS[args.plan] * PAGE  # type: ignore[operator]
    print(f"machine: {machine()}; plan {args.plan} ceiling {ceiling:,} rows/s; "
          f"latency {args.latency_ms} ms", flush=True)
    if args.destination:
        return compare_destinations(args, ceiling)

    results = []
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=args.contacts,
                events=args.events, seed=args.seed) as srv:
        print("running: ours ...", flush=True)
        results.append(run_events_backfill(srv, "ours", lambda: ours_events(srv.base_url),
                                           run_ours))
        if args.backfill_windows:
            name = f"ours, chunks of {args.backfill_windows} windows"
            print(f"running: {name} ...", flush=True)
            results.append(run_events_backfill(
                srv, name, lambda: ours_events_factory(srv.base_url),
                run_ours_chunked(args.backfill_windows)))
        if not args.skip_peer:
            n = args.peer_events or args.events
            label = "rest_api" + (f" ({n:,} events)" if n != args.events else "")
            print(f"running: {label} ...", flush=True)
            results.append(run_events_backfill(srv, label, lambda: peer_events(srv.base_url),
                                               run_peer, reset={"events": n}, memory_limit=None))

    rows = []
    for m in results:
        ok = "yes" if m.rows == m.extra["expected"] else f"NO ({m.extra['expected']:,})"
        rows.append([m.name, m.seconds, m.rows, ok, m.rows_per_s,
                     f"{100 * m.rows_per_s / ceiling:.1f}%", m.requests,
                     f"{m.throttled} ({m.pct_429:.2f}%)", steps_text(m.steps)])
    table(["contender", "wall s", "rows", "= server", "rows/s", "% ceiling", "requests",
           "429s", "extract/normalize/load s"], rows,
          title=f"Rate-limited events backfill: {args.events:,} events, plan {args.plan} "
                f"({ceiling:,} rows/s ceiling), latency {args.latency_ms} ms")
    print("\nrequest rate per ~5 s of each run (req/s; '!n' = n answered 429 in that span):")
    for m in results:
        print(f"  {m.name}: {rate_profile(m)}")
        print(f"    {m.extra['stalls']}")
    peer = [m for m in results if m.name.startswith("rest_api")]
    if peer and peer[0].rows_per_s:
        print(f"\nours / rest_api rows/s: {results[0].rows_per_s / peer[0].rows_per_s:.1f}x")
    if args.peer_events and args.peer_events != args.events and not args.skip_peer:
        print(f"note: the rest_api peer ran on {args.peer_events:,} events (server reset with "
              f"events={args.peer_events}), not {args.events:,}, to keep the run short.")
    print("target: ours >= 90% of the ceiling end to end, < 1% of requests answered 429")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
