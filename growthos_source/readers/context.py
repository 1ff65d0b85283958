"""What every reader shares: the run's `Context`, the parent walk's end marker, per-table marks,
and the rejects check on the way out."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dlt

from .. import rejects
from ..endpoints import Endpoint, root_table
from ..http import GrowthOSClient, quote_path_segment
from ..prefetch import EventFeed

logger = logging.getLogger("growthos_source")
Row = dict[str, Any]


@dataclass
class WalkComplete:
    """Sent by a parent walk after its last page: the ids it saw, and whether the walk covered
    the whole list (only then may missing ids be taken as deleted)."""

    table: str
    seen: set[str]
    whole_list: bool
    pages: int
    # A walk by created_at windows cannot see a record without created_at: only warehouse rows
    # with this column set may then be taken as deleted.
    requires: str | None = None


class Tally:
    """Tells when a transformer has handled a whole parent walk.

    dlt evaluates a transformer's steps round-robin, so the WalkComplete marker can be handled
    before the last pages; the walk is done once the marker arrived and its page count is met.
    """

    def __init__(self) -> None:
        self.pages = 0
        self.expected: int | None = None

    def page(self) -> bool:
        self.pages += 1
        return self.done()

    def marker(self, m: WalkComplete) -> bool:
        self.expected = m.pages
        return self.done()

    def done(self) -> bool:
        return self.expected is not None and self.pages == self.expected

    def reset(self) -> None:
        self.pages, self.expected = 0, None


@dataclass
class Context:
    client: GrowthOSClient
    start_date: str | None = None
    end_date: str | None = None
    ids: dict[str, list[str]] = field(default_factory=dict)
    deletes: str = "mark"
    workers: int = 4
    page_size: int = 100
    events_window: dt.timedelta = dt.timedelta(days=7)
    # A chunked backfill sizes its windows by the API's daily counts (backfill_plan.py) unless
    # the user chose `events_window_days`.
    events_window_planned: bool = True
    events_windows_per_run: int | None = None
    settling_days: int | None = None
    run_started: str = ""
    events_feed: EventFeed | None = None
    # late events and merges (rereads.py)
    events_lookback: dt.timedelta = dt.timedelta(minutes=10)
    events_reconcile: bool = True
    events_reread_days: int = 31
    events_reattribute_requests: int = 1000
    project_timezone: str | None = None
    # A token per top-level resource, new each time dlt starts it: a run retried without a
    # failed table (isolation.py) extracts the same source again, and transformers must then
    # forget what they kept from the first attempt (see `fresh`).
    extracts: dict[str, object] = field(default_factory=dict)

    def walks(self, client: GrowthOSClient | None = None) -> int:
        """How many walks to run side by side: what the rate and request times of `client`
        (default: this run's) need, or while latency sizes them the most the limit may grow
        to (http/concurrency.py `width`), at most `workers`."""
        return max(1, min(self.workers, (client or self.client).concurrency.width))

    def in_flight(self, client: GrowthOSClient | None = None) -> int:
        """How many walks advance at once now (the client's limit), at most `workers`: what
        windows and probes are planned for, since the latency-learnt limit starts below the
        walks a fan-out starts (http/concurrency.py)."""
        return max(1, min(self.workers, (client or self.client).concurrency_limit()))


def fresh(ctx: Context, ep: Endpoint, run: dict[str, Any], tally: Tally | None = None) -> None:
    """Clear a transformer's per-run memory if this is a new extract of its parent walk."""
    token = ctx.extracts.get(root_table(ep))
    if run.get("_extract") is not token:
        run.clear()
        run["_extract"] = token
        if tally is not None:
            tally.reset()


def table_marks(table: str) -> dict[str, Any]:
    """The incremental marks of one table. Kept in the source state under the table's name:
    `resource_state()` resolves the "current" resource, which is ambiguous in transformers fed
    by a shared parent walk."""
    marks = dlt.current.source_state().setdefault("marks", {})
    return marks.setdefault(table, {})  # type: ignore[no-any-return]


def _id_field(ep: Endpoint) -> str:
    return "id" if "id" in ep.primary_key else ep.primary_key[-1]


def _child_path(ep: Endpoint, parent_value: str) -> str:
    return ep.path.replace(f"{{{ep.parent_field}}}", quote_path_segment(parent_value))


def _checked(ctx: Context, ep: Endpoint, rows: list[Row],
             cursor_field: str | None = None) -> Iterator[Any]:
    """The loadable rows, then the rejects (to `_growthos_rejects`)."""
    good, bad = rejects.check(ep, rows, ctx.run_started, cursor_field)
    if good:
        yield good
    if bad:
        yield rejects.hinted(bad)
