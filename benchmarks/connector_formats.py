"""Which loader file format to load DuckDB with: our source, every default table, side by side.

    python benchmarks/connector_formats.py [--contacts 20000] [--events 100000]

Starts the local server (unlimited plan, no added latency) as a separate process and syncs the
same data three times into fresh DuckDB files with `insert_values` (dlt's default for DuckDB),
`jsonl` and `parquet`, printing extract / normalize / load seconds and rows/s for each.
"""

from __future__ import annotations

import argparse

from common import Server, Workdir, counted, fresh_pipeline, step_seconds, table

FORMATS = ("insert_values", "jsonl", "parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    from growthos_source import growthos, sync

    rows_out = []
    with Server(plan="unlimited", latency_ms=0, contacts=args.contacts,
                events=args.events) as server:
        for fmt in FORMATS:
            server.reset()
            info = server.info()
            ids = {k: info[k] for k in ("waitlist_ids", "funnel_ids", "cohort_ids")}
            work = Workdir()
            try:
                pipeline = fresh_pipeline(f"formats_{fmt}", work)
                m, result = counted(server, fmt, lambda pipeline=pipeline, ids=ids, fmt=fmt: sync(
                    pipeline, growthos(api_key="gos_sk_test_local", base_url=server.base_url,
                                       **ids), loader_file_format=fmt))
                steps = step_seconds(pipeline)
                loaded = sum(n for t, n in result.rows.items() if not t.startswith("_"))
                rows_out.append([fmt, loaded, m.seconds, steps.get("extract", 0),
                                 steps.get("normalize", 0), steps.get("load", 0),
                                 loaded / m.seconds])
            finally:
                work.cleanup()
    table(["format", "rows", "wall s", "extract s", "normalize s", "load s", "rows/s"], rows_out,
          title=f"All default tables, {args.contacts:,} contacts, {args.events:,} events "
                "(unlimited plan, 0 ms latency)")


if __name__ == "__main__":
    main()
