"""The event stream: read by time window, several windows at once, into arrow tables.

Windows are walked concurrently (http/fanout.py) and split while they run (splitting.py); in a
chunked backfill an EventFeed (prefetch.py) keeps reading the next chunk's windows while dlt
loads the previous one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import dlt

from . import backfill_plan, reconcile, rejects, replacements, timeline
from .arrowize import ArrowPages
from .columns import declared_types
from .endpoints import Endpoint
from .http import GrowthOSClient
from .http.fanout import DONE, fan_out, read_ahead
from .incremental import Cursor, iso_z, parse_ts
from .page_batch import Batch
from .prefetch import EventFeed
from .readers import Context, Row, table_marks
from .rereads import Reread
from .splitting import Splitter, Window, split_min_pages
from .walks import walk_events

logger = logging.getLogger("growthos_source")

# Pages are handed to dlt as arrow tables of this many rows: dlt's per-item work (schema
# inference, hints) costs the same for 100 rows as for 10,000.
EVENTS_BATCH_ROWS = 10_000


def read_events(ctx: Context, ep: Endpoint) -> Iterator[Any]:
    """The event stream by time window, several windows at once, newest first in each.

    Pages leave as arrow tables (see arrowize.py): the stream is the one table big enough for
    dlt's row-by-row normalizer to be the bottleneck.
    """
    marks = table_marks(ep.table)
    cur = Cursor(marks, "all", ep.cursor or "timestamp", ctx.start_date, ctx.end_date)
    arrow = _arrow(ep)
    feed = ctx.events_feed
    client = feed.client(ctx.client) if feed is not None else ctx.client
    # The caught-up run right after a chunked backfill in the same sync() gets the ended feed:
    # its client keeps the learnt pacing, what it learnt of the stream spares two probes, and
    # the lookback's pages are read already (its `tail`).
    handoff, feed = (feed, None) if feed is not None and feed.done else (None, feed)
    end = parse_ts(ctx.end_date) if ctx.end_date else None
    # Caught up (not inside a chunked backfill) with a mark: the walk starts `events_lookback`
    # behind it, for events still being processed at the last run (their range is replaced
    # after the load), and the days and merges the walk cannot see are re-read after it.
    caught_up = feed is None and cur.last is not None and marks.get("through") is None
    # The first run of a load from start_date (no mark yet): history may begin much later.
    from_start_date = ctx.start_date is not None and cur.last is None \
        and marks.get("through") is None
    session = replacements.current()
    # Lookback, reconciliation and re-attribution need the warehouse that sync() opened.
    caught_up = caught_up and session is not None and session.backend is not None
    if caught_up and session is not None and session.reattribute_only:
        rr = Reread(ctx, ep, client, arrow, None)
        yield from rr.reattribute(marks)
        yield from _finish(rr, marks)
        return
    held: set[str] = set()  # ids the warehouse holds from the lookback's start on
    if caught_up:
        assert cur.last is not None
        since = timeline.lookback_start(parse_ts(cur.last), ctx.events_lookback)
        known = reconcile.warehouse_ids_since(since)
        if known is not None:  # without the warehouse's ids the lookback would duplicate
            held = known
            cur.rewind(iso_z(since))
    low = max((v for v in (cur.low, marks.get("through")) if v), default=None)
    if low is not None:
        start: dt.datetime | None = parse_ts(low)
        counted: dict[str, int] | None = None
        if (from_start_date and feed is not None and feed.stream_probe is None
                and ctx.events_window_planned and start is not None):
            # The first chunk of a backfill from a start date: its probes and counts at once.
            newest, ignored, counted = backfill_plan.opening(client, ep.path, start, end)
            feed.stream_probe = (newest, ignored)
        else:
            newest, ignored = _probe_stream(client, ep.path, feed or handoff)
        if ignored:
            start = None
        elif from_start_date and start is not None and newest is not None:
            if feed is not None and ctx.events_window_planned:
                start, counts = backfill_plan.start_from(client, ep.path, start, newest,
                                                         ctx.workers, known=counted)
                feed.day_counts = counts or {}
            else:
                start = timeline.history_start(client, ep.path, start, newest,
                                               probes=ctx.workers)
    else:
        newest = timeline.newest(client, ep.path)
        if newest is None:
            return
        walks = ctx.walks(client)  # the first answer told the rate and the latency
        if walks <= 1 and feed is None:
            # One walk reads as fast as the key may (a low plan, a near API): no search for
            # where history starts, no windows, no partial pages but the last.
            yield from _one_walk(ctx, ep, client, cur, None, end, held)
            return
        if feed is not None:
            # A chunked backfill's chunks are windows from where history starts: the API's
            # daily counts tell where, and size the windows (backfill_plan.py).
            bounds, counts = backfill_plan.history(client, ep.path, newest, walks,
                                                   use_counts=ctx.events_window_planned)
            feed.day_counts = counts or {}  # asked: none, or not where history starts
            if bounds[0] is not None:
                feed.stream_probe = (bounds[1], False)
        else:
            # Where history starts only spreads the walks (an empty stretch below the first
            # event costs no request).
            now = ctx.in_flight(client)
            found = timeline.history_bounds(client, ep.path, probes=now, newest=newest,
                                            precision=1 / (2 * now))
            if found is None:
                return
            bounds = found
        start, newest = bounds
    if start is None:
        # The API ignores `from`/`to`: every window would read the stream from its newest
        # event. One walk, newest first, down to the mark; the walk keeps [from, to) itself.
        logger.warning("events: the API ignores the event stream's from/to filters; reading "
                       "it as one walk, newest first%s", f", down to {low}" if low else "")
        yield from _one_walk(ctx, ep, client, cur, low, end, held)
        return
    if end is not None and start >= end:
        return
    all_wins, planned = _windows(ctx, client, feed, start, end, newest)
    # A bounded run (a backfill chunk) takes the oldest windows; `through` records how far it
    # got, so an empty stretch of history still moves the next chunk forward. It also takes
    # up to as many again of the next windows the feed has read to the end already: their
    # pages wait in memory either way, and each chunk is a dlt run of its own (~1 s).
    per_run = ctx.events_windows_per_run
    if per_run and feed is not None:
        per_run = backfill_plan.chunk_windows(per_run, ctx.walks(client) if planned else per_run,
                                 all_wins, feed)
    wins = all_wins[: per_run or None]
    upcoming = all_wins[len(wins):]
    if feed is not None and not upcoming and end is None and newest is not None:
        # The backfill's last chunk: the caught-up run after it walks the lookback behind the
        # newest event; idle workers read that now, while this chunk's walks end and it loads.
        # (New events make that run's mark later: it keeps the part from its own start.)
        feed.tail = (timeline.lookback_start(newest, ctx.events_lookback), None)
        upcoming = [feed.tail]
    last_end = wins[-1][1]
    marks["backlog_windows"] = len(all_wins) - len(wins)
    marks["run_windows"] = len(wins)

    def walk(a: dt.datetime, b: dt.datetime | None,
             window: Window) -> Callable[[], Iterator[list[Row]]]:
        params: dict[str, Any] = {"from": iso_z(a)}
        if b is not None:
            params["to"] = iso_z(b)
        return lambda: walk_events(client, ep.path, params, page_size=ctx.page_size,
                                   window=window)

    top = (newest or last_end or start) + dt.timedelta(milliseconds=1)
    split_rows = split_min_pages(client.concurrency.cycle) * ctx.page_size
    if feed is not None:  # a chunked backfill: the feed reads ahead across runs
        pages: Iterator[list[Row]] = feed.pages(wins, upcoming, top, walk,
                                                ctx.walks(client), split_rows)
        splitter = None
    elif handoff is not None and timeline.covers_open_walk(handoff.tail, wins):
        assert handoff.tail is not None
        pages = handoff.pages([handoff.tail], [], top, walk, ctx.walks(client), split_rows)
        splitter = None
    else:
        # Workers left without a window take half of the longest running walk (splitting.py).
        splitter = Splitter(walk, min_rows=split_rows)
        n = ctx.walks(client)
        # As many windows as walks in flight now; workers beyond them split running walks
        # only when the limit grows (fanout.py).
        jobs = [(i, splitter.job(a, b, b or top))
                for i, (a, b) in enumerate(timeline.merge_windows(wins, ctx.in_flight(client)))]
        pages = (rows for _, rows in fan_out(jobs, n, more=splitter.more,
                                              places=client.places)
                 if rows is not DONE)
    minutes = Counter[str]() if caught_up else None
    yield from _batches(ctx, ep, arrow, cur, pages, held, minutes)
    if caught_up and minutes is not None:
        rr = Reread(ctx, ep, client, arrow, start)
        # Right after a backfill that read every day (handoff), a count of each day would
        # only repeat it (a request per 366 days); what arrived late meanwhile is found by the
        # next run's count.
        if ctx.events_reconcile and handoff is None:
            # The project's zone is asked once (GET /settings), only when some day differs.
            yield from rr.reconcile(minutes, ctx.project_timezone
                                    or marks.get("project_timezone"),
                                    (marks.get("report") or {}).get("timezone"))
            if "project_timezone" in rr.report:
                marks["project_timezone"] = rr.report["project_timezone"] or "UTC"
        yield from rr.reattribute(marks)
        yield from _finish(rr, marks)
    splits = splitter.splits if splitter is not None else feed.splits if feed is not None else 0
    if splits:
        logger.info("events: %d windows, %d splits of running walks", len(wins), splits)
    cur.commit()
    if last_end is not None and marks["backlog_windows"]:
        marks["through"] = iso_z(last_end)
    else:
        marks.pop("through", None)


def _windows(ctx: Context, client: GrowthOSClient, feed: EventFeed | None, start: dt.datetime,
             end: dt.datetime | None, newest: dt.datetime | None,
             ) -> tuple[list[tuple[dt.datetime, dt.datetime | None]], bool]:
    """The windows of [start, end), and whether they were planned by the API's daily counts
    (a chunked backfill, counts asked once per backfill, unless the user set their length);
    else they are `events_window` long."""
    if feed is not None and ctx.events_window_planned:
        if feed.day_counts is None:  # a backfill from a start date, or resumed in a new process
            feed.day_counts = backfill_plan.counts_from(client, start, newest) or {}
        if feed.day_counts:
            return backfill_plan.windows(start, end, feed.day_counts,
                                         backfill_plan.WINDOW_PAGES * ctx.page_size,
                                         newest), True
    return timeline.windows(start, end, ctx.events_window, newest), False


def _arrow(ep: Endpoint) -> ArrowPages:
    schema = dlt.current.source_schema()
    columns = schema.tables.get(ep.table, {}).get("columns", {})
    known = {**declared_types(ep.table),  # the document's columns, in every batch (columns.py)
             **{n: str(c["data_type"]) for n, c in columns.items() if c.get("data_type")}}
    return ArrowPages(known, schema.naming.normalize_path, always=tuple(declared_types(ep.table)))


def _one_walk(ctx: Context, ep: Endpoint, client: Any, cur: Cursor, low: str | None,
              end: dt.datetime | None, held: set[str]) -> Iterator[Any]:
    """The whole stream (or what is newer than `low`) as one walk: for an API that ignores the
    time filters, or when one walk reads as fast as the key may. Each event is read once; the
    mark moves as usual."""
    params: dict[str, Any] = {}
    if low is not None:
        params["from"] = iso_z(parse_ts(low))
    if end is not None:
        params["to"] = iso_z(end)
    # The walk runs on its own thread: its next request goes out while this one's rows are
    # checked and turned into arrow tables.
    pages = read_ahead(lambda: walk_events(client, ep.path, params, page_size=ctx.page_size),
                       client.places)
    yield from _batches(ctx, ep, _arrow(ep), cur, pages, held)
    cur.commit()
    table_marks(ep.table).pop("through", None)
    table_marks(ep.table)["backlog_windows"] = 0


def _probe_stream(client: GrowthOSClient, path: str,
                  feed: EventFeed | None) -> tuple[dt.datetime | None, bool]:
    """(the newest event, whether the API ignores `to`): two one-row requests, asked once per
    chunked backfill. Its later runs reuse the first run's answer: each chunk asking again
    cost two round trips between chunks, and a newest event that moved would plan the last
    window differently, dropping what the feed had read ahead of it. Events newer than the
    answer still land in the open-ended last window, and the caught-up run after the
    backfill reads the tail from its mark."""
    if feed is not None and feed.stream_probe is not None:
        return feed.stream_probe
    newest = timeline.newest(client, path)
    ignored = newest is not None and timeline.ignores_to(client, path, newest)
    if feed is not None:
        feed.stream_probe = (newest, ignored)
    return newest, ignored


def _batches(ctx: Context, ep: Endpoint, arrow: ArrowPages, cur: Cursor,
             pages: Iterator[list[Row]], held: set[str],
             minutes: Counter[str] | None = None) -> Iterator[Any]:
    """Pages checked, filtered by the mark (and by `held`, the ids the warehouse already has
    from a lookback's start on) and handed over as arrow tables; with `minutes`, the rows
    kept are also counted per minute for the count reconciliation (reconcile.py)."""
    batch = Batch()
    for rows in pages:
        body, data = getattr(rows, "body", None), getattr(rows, "data", None)  # walks.PageRows
        rows, bad = rejects.check(ep, rows, ctx.run_started, rename_keys=False)
        if bad:
            yield rejects.hinted(bad)
        kept = cur.filter(rows)
        if held:
            kept = [r for r in kept if str(r.get("id")) not in held]
        if minutes is not None:
            minutes.update(reconcile.minute_counts(r.get("timestamp") for r in kept))
        batch.add(kept, body, data)
        if len(batch) >= EVENTS_BATCH_ROWS:
            yield arrow.table(batch)
            batch = Batch()
    if batch:
        yield arrow.table(batch)


def _finish(rr: Reread, marks: dict[str, Any]) -> Iterator[Any]:
    """The replacement log of a run's re-reads, and its report in the marks."""
    log = rr.log()
    if log is not None:
        yield log
    if rr.density is not None:
        marks["density"] = rr.density
    marks["report"] = {**rr.report, "reread_requests": rr.requests}
