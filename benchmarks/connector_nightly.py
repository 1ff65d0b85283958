"""Nightly sync: requests and time of an incremental run after a day of activity.

    python benchmarks/connector_nightly.py [--contacts 200000] [--events 1000000]
        [--plan scale] [--latency-ms 50] [--advance 1d]

Starts `python -m growthos_sim` on 127.0.0.1 in its own process, backfills every default
resource (all but the opt-in ones; the waitlist/funnel/cohort ids from /_sim/info) with our
connector into a fresh DuckDB file, applies `POST /_sim/mutate {"advance": "1d"}` (a default day
of activity) and runs the incremental sync. Prints requests and wall time of both runs against
the minimum the API allows: every list walked whole, max(1, ceil(n/100)) pages per list and per
parent for child lists (the API has no "updated since" filter on lists) except conversions,
walked only for links that are new or whose `conversions` count changed; one request per single
object, plus ceil(new events/100) pages of the event stream (all events for the backfill) and
one analytics query per 366 days of event counts. Sizes come from /_sim/truth and /_sim/info.

The default day includes late events (3 s to 5 days old) and a merge. For the incremental run
the event stream's minimum is: the pages of the events from the lookback's start on (the mark
minus `events_lookback_seconds`, down to a quarter hour), plus the pages of each day holding a late event older than
that (from the day's start to the lookback's start: what a re-read of the day must read), plus
one count query per 366 days of history. Re-attributing merged contacts' events is not part
of the minimum: its requests are printed on their own line.

The incremental run is also shown step by step (common.SyncMarks): each dlt run with its
extract / normalize / load seconds, the deletes, replacements, re-attribution and ledger steps,
and when its requests were sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections import Counter
from typing import Any

from common import (
    KEY,
    PLAN_RPS,
    Server,
    SyncMarks,
    Workdir,
    counted,
    fresh_pipeline,
    machine,
    rate_profile,
    step_seconds,
    steps_text,
    table,
)


def ledger_requests(pipeline: Any) -> dict[str, int]:
    """Requests per table of the pipeline's latest run, as its ledger (`_growthos_runs`)
    counted them."""
    with pipeline.sql_client() as c:
        runs = c.make_qualified_table_name("_growthos_runs")
        rows = c.execute_sql(f"SELECT table_name, requests FROM {runs} WHERE run_id = "
                             f"(SELECT run_id FROM {runs} ORDER BY started_at DESC LIMIT 1)")
    return {str(t): int(n or 0) for t, n in rows or []}


def pages(n: int) -> int:
    return max(1, math.ceil(n / 100))


def link_conversions(srv: Server) -> dict[str, int]:
    return {str(r["code"]): int(r["conversions"]) for r in srv.truth("referral_links")}


def minimum(srv: Server, info: dict[str, Any], event_rows: int, count_days: int,
            links_before: dict[str, int] | None = None) -> dict[str, tuple[int, int, int]]:
    """{table: (parents or 1, records, minimum requests)} for the default resources.

    With `links_before` (each link's `conversions` count at the previous sync) only links whose
    count changed, or that are new, need their conversions walked: the links list tells."""
    def ids(table: str, field: str = "id") -> list[str]:
        return [str(r[field]) for r in srv.truth(table)]

    def by(table: str, field: str) -> Counter[str]:
        return Counter(str(r[field]) for r in srv.truth(table))

    def children(parents: list[str], counts: Counter[str]) -> tuple[int, int, int]:
        return (len(parents), sum(counts[p] for p in parents),
                sum(pages(counts[p]) for p in parents))

    out: dict[str, tuple[int, int, int]] = {}
    out["contacts"] = (1, info["contacts"], pages(info["contacts"]))
    for t in ("segments", "referral_programs", "campaigns", "surveys", "webhook_endpoints",
              "api_keys"):
        n = sum(1 for _ in srv.truth(t))
        out[t] = (1, n, pages(n))
    segs, progs = ids("segments"), ids("referral_programs")
    camps, survs, hooks = ids("campaigns"), ids("surveys"), ids("webhook_endpoints")
    links = ids("referral_links", "code")
    if links_before is not None:
        now = link_conversions(srv)
        links = [c for c in links if links_before.get(c) != now.get(c)]
    out["segment_memberships"] = children(segs, by("segment_memberships", "segment_id"))
    out["referral_links"] = children(progs, by("referral_links", "program_id"))
    out["referral_conversions"] = children(links, by("referral_conversions", "link_code"))
    out["referral_leaderboard"] = children(progs, by("referral_leaderboard", "program_id"))
    out["campaign_stats"] = (len(camps), len(camps), len(camps))
    out["survey_responses"] = children(survs, by("survey_responses", "survey_id"))
    out["survey_stats"] = (len(survs), len(survs), len(survs))
    wls = info["waitlist_ids"]
    out["waitlists"] = (len(wls), len(wls), len(wls))
    out["waitlist_entries"] = children(wls, by("waitlist_entries", "waitlist_id"))
    out["webhook_deliveries"] = children(hooks, by("webhook_deliveries", "endpoint_id"))
    out["events"] = (1, event_rows, pages(event_rows))
    out["daily_event_counts"] = (1, count_days, max(1, math.ceil(count_days / 366)))
    for t, k in (("funnels", "funnel_ids"), ("cohorts", "cohort_ids")):
        out[t] = (len(info[k]), len(info[k]), len(info[k]))
    out["analytics_overview"] = (1, 1, 1)
    out["project_settings"] = (1, 1, 1)
    return out


LOOKBACK = dt.timedelta(seconds=600)  # the source's default events_lookback_seconds


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_minimum(srv: Server, mark: str, received_after: str) -> tuple[int, int, int, int]:
    """(events from the lookback's start on, their pages, late days to re-read, the pages of
    those days before the lookback's start) after the previous sync's mark `mark`, for
    events received after `received_after` (the clock at the previous sync)."""
    since = _ts(mark) - LOOKBACK
    since = since.replace(minute=since.minute // 15 * 15, second=0, microsecond=0)  # as the walk
    events = list(srv.truth("events"))
    walked = sum(1 for e in events if _ts(e["timestamp"]) >= since)
    late_days = {e["timestamp"][:10] for e in events
                 if e.get("received_at", "") > received_after and _ts(e["timestamp"]) < since}
    per_day: Counter[str] = Counter()
    for e in events:
        day = e["timestamp"][:10]
        if day in late_days and _ts(e["timestamp"]) < since:
            per_day[day] += 1
    return walked, pages(walked), len(late_days), sum(pages(per_day[d]) for d in late_days)


def history_days(srv: Server, info: dict[str, Any]) -> int:
    """Days from the first day with events to the server's today (the daily counts' range)."""
    first = min(r["date"] for r in srv.truth("daily_event_counts"))
    today = dt.date.fromisoformat(info["now"][:10])
    return (today - dt.date.fromisoformat(first)).days + 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contacts", type=int, default=200_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--plan", default="scale")
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--advance", default="1d")
    args = p.parse_args()
    print(f"machine: {machine()}; plan {args.plan}, latency {args.latency_ms} ms", flush=True)

    from growthos_source import growthos, sync

    work = Workdir()
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=args.contacts,
                events=args.events, seed=args.seed) as srv:
        info0 = srv.reset()
        ids = {k: info0[k] for k in ("waitlist_ids", "funnel_ids", "cohort_ids")}

        def source() -> Any:
            return growthos(api_key=KEY, base_url=srv.base_url, **ids)

        pipeline = fresh_pipeline("nightly", work)
        print("running: backfill ...", flush=True)
        back, r0 = counted(srv, "backfill", lambda: sync(pipeline, source()))
        back.steps = step_seconds(pipeline)
        q0 = ledger_requests(pipeline)
        min0 = minimum(srv, info0, info0["events"], history_days(srv, info0))

        links_before = link_conversions(srv)
        mark = max(e["timestamp"] for e in srv.truth("events"))
        summary = srv.mutate({"advance": args.advance})
        info1 = srv.info()
        new_events = info1["events"] - info0["events"]
        print(f"mutate advance {args.advance}: {summary['from']} -> {summary['to']}, "
              f"{new_events} new events", flush=True)
        # daily_event_counts reads the whole history again (late events change any day)
        walked, walk_pages, late_days, late_pages = event_minimum(srv, mark, info0["now"])
        days = history_days(srv, info1)
        min1 = minimum(srv, info1, walked, days, links_before)
        min1["events"] = (1, walked, walk_pages + late_pages + math.ceil(days / 366))
        naive1 = sum(v[2] for v in minimum(srv, info1, new_events, 1).values())
        print(f"late events fall on {late_days} days before the lookback: {late_pages} pages "
              f"to re-read them; {math.ceil(days / 366)} count queries for {days} days",
              flush=True)
        print("running: incremental ...", flush=True)
        with SyncMarks() as marks:
            inc, r1 = counted(srv, "incremental", lambda: sync(pipeline, source()))
        inc.steps = step_seconds(pipeline)
        q1 = ledger_requests(pipeline)
    work.cleanup()

    rows = []
    for table_name in sorted(min1, key=lambda t: -min1[t][2]):
        a, b = min0[table_name], min1[table_name]
        rows.append([table_name, b[0], b[1], q1.get(table_name), b[2],
                     r1.rows.get(table_name, 0), q0.get(table_name), a[2],
                     r0.rows.get(table_name, 0)])
    table(["table", "parents", "records", "req (incr)", "min req (incr)", "rows loaded (incr)",
           "req (backfill)", "min req (backfill)", "rows loaded (backfill)"], rows,
          title="Requests per table (the ledger's count) and their minimum (records: live "
                "now; incr events: new ones)")

    m0, m1 = sum(v[2] for v in min0.values()), sum(v[2] for v in min1.values())
    rps = PLAN_RPS.get(args.plan)

    def min_s(n: int) -> float | None:
        return n / rps if rps else None

    table(["run", "wall s", "min s at plan rate", "requests", "minimum", "req / min", "429s",
           "rows loaded", "extract/normalize/load s"],
          [["backfill", back.seconds, min_s(m0), back.requests, m0, f"{back.requests / m0:.3f}",
            back.throttled, sum(r0.rows.values()), steps_text(back.steps)],
           ["incremental", inc.seconds, min_s(m1), inc.requests, m1,
            f"{inc.requests / m1:.3f}", inc.throttled, sum(r1.rows.values()),
            steps_text(inc.steps)]],
          title=f"Nightly sync: {args.contacts:,} contacts, {args.events:,} events, "
                f"plan {args.plan}, latency {args.latency_ms} ms, advance {args.advance}")
    print("\nrequest rate per ~5 s (req/s; '!n' = n answered 429 in that span):")
    for m in (back, inc):
        print(f"  {m.name}: {rate_profile(m)}")
        print(f"    {m.extra['stalls']}")
    print("\nincremental run, step by step (seconds from its start; steps nest):")
    print(marks.text())
    rep = r1.events
    print(f"\nevents (connector's report): days fixed {rep.get('days_fixed')}, still "
          f"different {rep.get('still_different')}, deferred {rep.get('deferred')}; "
          f"re-read/count requests {rep.get('reread_requests')}, of which re-attributing "
          f"merged contacts' events {rep.get('reattribute_requests')} "
          f"({rep.get('reattributed_ranges')} ranges)")
    reattr = int(rep.get("reattribute_requests") or 0)
    print(f"incremental requests over the minimum without re-attribution: "
          f"{100 * ((inc.requests - reattr) / m1 - 1):+.1f}%")
    print(f"\nincremental / backfill: requests {inc.requests / back.requests:.3f}, "
          f"time {inc.seconds / back.seconds:.3f}")
    print(f"minimum if every link's conversions were walked (no use of the links' counts): "
          f"{naive1:,}; incremental requests / that: {inc.requests / naive1:.3f}")
    print(f"incremental requests over the minimum: {100 * (inc.requests / m1 - 1):+.1f}% "
          "(target: within 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
