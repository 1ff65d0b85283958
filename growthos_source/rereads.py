"""After the incremental walk: re-read the days whose counts differ from the API's, and the
instants of events whose contact was merged away or changed its external id.

Each re-read range `[lo, hi)` lies before the walk's start (`walk_from`) and no two overlap, so
a run yields every event at most once; the ranges go to the replacement log
(replacements.py), which removes the older copies after the load. What happened is kept in
the events marks under `report` (`sync()` returns it as `SyncResult.events`):

    days_checked, days_fixed, still_different {day: [api, warehouse]}, deferred (days over the
    cap), timezone (the zone the API's days were read in), reattributed_ranges and
    reattribute_requests (re-reads for merged or renamed contacts), reattribute_deferred
    (over the budget), reread_requests (every request of the above, count queries included)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import instants, reconcile, rejects, replacements
from .arrowize import ArrowPages
from .endpoints import Endpoint
from .http import GrowthOSClient
from .http.fanout import DONE, fan_out
from .incremental import iso_z, parse_ts
from .page_batch import Batch
from .readers import Context, Row
from .walks import walk_events

logger = logging.getLogger("growthos_source")
UTC = dt.timezone.utc
# The replacement range behind an open-ended walk ends here (far beyond any event).
FAR = dt.datetime(9999, 1, 1, tzinfo=UTC)
Range = tuple[dt.datetime, dt.datetime]
BATCH_ROWS = 10_000


@dataclass
class Reread:
    """What one run re-reads beyond its incremental walk, and the ranges to replace."""

    ctx: Context
    ep: Endpoint
    client: GrowthOSClient
    arrow: ArrowPages
    # The incremental walk read [walk_from, ...), keeping only events the warehouse lacked;
    # re-reads stay below it.
    walk_from: dt.datetime | None
    ranges: list[Range] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    density: float | None = None  # events per second over the warehouse's history

    # ---- walking ranges ------------------------------------------------------------------
    def walk(self, ranges: list[Range], seen: Callable[[list[Row]], None] | None = None,
             ) -> Iterator[Any]:
        """Yield arrow tables (and rejects) of every event in `ranges`; they join `ranges` to
        replace. `seen` gets each page's loadable rows."""
        ranges = [r for r in ranges if r[0] < r[1]]
        if not ranges:
            return
        self.ranges.extend(ranges)

        def job(lo: dt.datetime, hi: dt.datetime) -> Callable[[], Iterator[list[Row]]]:
            return lambda: walk_events(self.client, self.ep.path,
                                       {"from": iso_z(lo), "to": iso_z(hi)},
                                       page_size=self.ctx.page_size)

        batch = Batch()
        for _, rows in fan_out([(i, job(lo, hi)) for i, (lo, hi) in enumerate(ranges)],
                               self.ctx.walks(), places=self.client.places):
            if rows is DONE:
                continue
            self.requests += 1
            body, data = getattr(rows, "body", None), getattr(rows, "data", None)
            good, bad = rejects.check(self.ep, rows, self.ctx.run_started, rename_keys=False)
            if bad:
                yield rejects.hinted(bad)
            if seen is not None:
                seen(good)
            batch.add(good, body, data)
            if len(batch) >= BATCH_ROWS:
                yield self.arrow.table(batch)
                batch = Batch()
        if batch:
            yield self.arrow.table(batch)

    @property
    def stop(self) -> dt.datetime:
        """Re-reads end here: the start of the 15-minute bucket holding `walk_from`, so a
        day's count after its re-read is the re-read rows plus whole buckets from here on."""
        if self.walk_from is None:
            return FAR
        b = int(self.walk_from.timestamp()) // reconcile.BUCKET_SECONDS
        return dt.datetime.fromtimestamp(b * reconcile.BUCKET_SECONDS, UTC)

    def _free(self, windows: list[Range]) -> list[Range]:
        """`windows` minus what is already re-read this run or read by the walk."""
        out: list[Range] = []
        stop = self.stop
        for lo, hi in windows:
            hi = min(hi, stop)
            parts = [(lo, hi)] if lo < hi else []
            for a, b in self.ranges:
                parts = [p for x, y in parts
                         for p in ((x, min(y, a)), (max(x, b), y)) if p[0] < p[1]]
            out.extend(parts)
        return out

    # ---- count reconciliation --------------------------------------------------------------
    def reconcile(self, run_minutes: Counter[str], timezone: str | None,
                  days_in: str | None = None) -> Iterator[Any]:
        """Re-read the days (newest first, at most `events_reread_days`) whose event count in
        the warehouse plus this run differs from the API's. `days_in`: the zone the API's days
        matched in last time (None: not known yet; UTC is tried first)."""
        held = reconcile.warehouse_buckets()
        if held is None:
            return
        run = reconcile.buckets_from_minutes(run_minutes)
        both = held + run
        if not both:
            return
        self.density = density(both)
        # From the oldest to the newest event the warehouse or the walk has, as days of UTC
        # and of the zone the API's days were found in: nothing the API holds is newer than
        # the stream's newest (the walk reads up to it).
        lo_d, hi_d = self._span(both, reconcile.zone(days_in) if days_in else UTC)
        api = reconcile.api_day_counts(self.client, lo_d, hi_d)
        self.requests += reconcile.query_requests(lo_d, hi_d)
        tz: dt.tzinfo = UTC
        diff = self._within(reconcile.differing(api, reconcile.days_of(both, UTC)), UTC)
        if diff:
            # Shifted day boundaries show as differences on most days: try the project's zone.
            if timezone is None:
                self.requests += 1
            name = timezone or reconcile.project_timezone(self.client)
            self.report["project_timezone"] = name
            local = reconcile.zone(name)
            if local is not UTC:
                first, last = self._span(both, local)
                # Its first or last day can lie outside the days asked for: ask for those too.
                for x, y in ((first, lo_d - dt.timedelta(days=1)),
                             (hi_d + dt.timedelta(days=1), last)):
                    if x <= y:
                        api.update(reconcile.api_day_counts(self.client, x, y))
                        self.requests += reconcile.query_requests(x, y)
                alt = self._within(reconcile.differing(api, reconcile.days_of(both, local)),
                                   local)
                if len(alt) < len(diff):
                    tz, diff = local, alt
        self.report.update(days_checked=len(set(api) | set(reconcile.days_of(both, tz))),
                           timezone=getattr(tz, "key", "UTC"))
        cap = self.ctx.events_reread_days
        todo: list[str] = []
        deferred: list[str] = []
        blocked: list[str] = []
        for day in diff:
            lo, _ = reconcile.day_bounds(day, tz)
            if lo >= self.stop:
                blocked.append(day)  # all of it was walked just now: next run compares again
            elif len(todo) < cap:
                todo.append(day)
            else:
                deferred.append(day)
        reread: Counter[int] = Counter()

        def count(rows: list[Row]) -> None:
            reread.update(reconcile.buckets_from_minutes(
                reconcile.minute_counts(r.get("timestamp") for r in rows)))

        yield from self.walk(self._free([reconcile.day_bounds(d, tz) for d in todo]), count)
        # After the re-read a day holds what was re-read plus what the warehouse and the walk
        # hold of it from `stop` on.
        tail = held + run
        for b in [b for b in tail if b * reconcile.BUCKET_SECONDS < self.stop.timestamp()]:
            del tail[b]
        after = reconcile.days_of(reread + tail, tz)
        still = {d: [api.get(d, 0), after.get(d, 0)] for d in todo
                 if api.get(d, 0) != after.get(d, 0)}
        still.update({d: [api.get(d, 0), reconcile.days_of(both, tz).get(d, 0)]
                      for d in blocked})
        self.report.update(days_fixed=sorted(d for d in todo if d not in still),
                           still_different=still, deferred=deferred)
        if todo or deferred or still:
            logger.info("events: %d days re-read (counts differed), %d deferred, %d still "
                        "different", len(todo), len(deferred), len(still))
        for d, (a, w) in sorted(still.items()):
            logger.warning("events: day %s still differs after re-reading it: API %d, "
                           "warehouse %d (days in %s)", d, a, w, self.report["timezone"])

    def _span(self, buckets: Counter[int], tz: dt.tzinfo) -> tuple[dt.date, dt.date]:
        """The first and last day holding `buckets`, as days of UTC and of `tz`, within
        start_date/end_date."""
        edges = [dt.datetime.fromtimestamp(b * reconcile.BUCKET_SECONDS, UTC)
                 for b in (min(buckets), max(buckets))]
        days = [e.astimezone(z).date() for e in edges for z in (UTC, tz)]
        lo_d, hi_d = min(days), max(days)
        if self.ctx.start_date:
            lo_d = max(lo_d, parse_ts(self.ctx.start_date).date())
        if self.ctx.end_date:
            hi_d = min(hi_d, parse_ts(self.ctx.end_date).date())
        return lo_d, hi_d

    def _within(self, days: list[str], tz: dt.tzinfo) -> list[str]:
        """Days wholly inside start_date/end_date (partial days cannot match the API's)."""
        lo = parse_ts(self.ctx.start_date) if self.ctx.start_date else None
        hi = parse_ts(self.ctx.end_date) if self.ctx.end_date else None
        out = []
        for d in days:
            a, b = reconcile.day_bounds(d, tz)
            if (lo is None or a >= lo) and (hi is None or b <= hi):
                out.append(d)
        return out

    # ---- merged contacts -------------------------------------------------------------------
    def reattribute(self, marks: dict[str, Any]) -> Iterator[Any]:
        """Re-read the instants of the warehouse's events whose contact vanished (merged away)
        or whose `user_id` no longer equals its contact's external id, for contact changes
        loaded since the last check. Instants closer than half a page of events (by the
        history's density) share one window."""
        changes = reconcile.contact_changes(marks.get("attributed_load"))
        if changes is None:
            return
        vanished, stale, top = changes
        rate = self.density or float(marks.get("density") or 1.0)
        # 0.8: the history's mean density understates busy stretches.
        span = dt.timedelta(seconds=self.ctx.page_size * 0.8 / max(rate, 1e-9))
        before = self.requests
        budget = self.ctx.events_reattribute_requests
        held = reconcile.event_stamps_of(vanished)
        # A vanished contact was deleted or merged: any of its events tells which (a merge
        # moves all of them). The probe is a re-read of that stretch, so it is never wasted;
        # contacts with events close together share one.
        probes = self._free(instants.covering_windows(held, span))
        if len(probes) > budget:
            logger.warning("events: %d merged/deleted contacts to check, over the budget of "
                           "%d requests; the rest wait for the next run", len(probes), budget)
            self.report["reattribute_deferred"] = len(probes)
            return
        still_there: set[str] = set()

        def note(rows: list[Row]) -> None:
            still_there.update(str(r.get("contact_id")) for r in rows)

        n0 = len(self.ranges)
        yield from self.walk(probes, note)
        moved = [s for cid, stamps in held.items() if cid not in still_there for s in stamps]
        windows = self._free(instants.instant_windows(stale + moved, span))
        yield from self.walk(windows)
        self.report["reattributed_ranges"] = len(self.ranges) - n0
        self.report["reattribute_requests"] = self.requests - before
        if top is not None:
            marks["attributed_load"] = top
        if len(self.ranges) > n0:
            logger.info("events: re-read %d ranges for %d merged or renamed contacts",
                        len(self.ranges) - n0, len(vanished) - len(still_there & set(held)))

    def log(self) -> Any | None:
        """The replacement log item for every range re-read this run."""
        if not self.ranges:
            return None
        return replacements.log_rows([(iso_z(a), iso_z(b)) for a, b in self.ranges],
                                     "reread", self.ctx.run_started)


def _day(bucket: int) -> dt.date:
    return dt.datetime.fromtimestamp(bucket * reconcile.BUCKET_SECONDS, UTC).date()


def density(buckets: Counter[int] | None) -> float:
    """Events per second over the warehouse's history (from its bucket counts)."""
    if not buckets:
        return 1.0
    span = (max(buckets) - min(buckets) + 1) * reconcile.BUCKET_SECONDS
    return sum(buckets.values()) / span
