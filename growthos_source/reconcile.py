"""Which stretches of the event stream to read again: days whose count differs from the API's,
and the instants of events whose contact was merged away or changed its external id.

Late events (a client `timestamp` in the past, offline SDK batches, the asynchronous processing
after the Ingest API's 202) appear in the stream behind the connector's mark, where no
incremental walk looks again. The API can say in one request how many events it holds per day
(`POST /analytics/query`, `event_count` by `day`, no `group_by`: the documented example groups
by a trait, so the connector sums whatever groups come back). Comparing with the warehouse's
own per-day counts finds exactly the days that changed; only those are re-read.

The warehouse is counted in 15-minute buckets (`FLOOR(EXTRACT(EPOCH FROM timestamp) / 900)`,
independent of the session's time zone) and the buckets summed into days in Python: so the
same query answers for UTC days and for the project's time zone (`GET /settings` `timezone`)
if the API's days turn out to be local (every zone's offset is a multiple of 15 minutes).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .http import GrowthOSClient
from .replacements import EVENTS_TABLE, current, running_backend
from .warehouse import stream

logger = logging.getLogger("growthos_source")

BUCKET_SECONDS = 900
UTC = dt.timezone.utc
# The query endpoint answers at most this many daily intervals per request (our server's limit;
# a year is what the documented example's range suggests is ordinary).
QUERY_DAYS = 366
# Count queries sent at once for a range of several years (api_day_counts).
PARALLEL_QUERIES = 4
COUNT_PATH = "/analytics/query"


def bucket_of(stamp: str) -> int:
    """The 15-minute bucket of an ISO 8601 UTC timestamp string (`2026-02-20T14:22:00.123Z`)."""
    d = dt.datetime(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]),
                    int(stamp[14:16]), tzinfo=UTC)
    return int(d.timestamp()) // BUCKET_SECONDS


def minute_counts(stamps: Iterable[Any]) -> Counter[str]:
    """Rows per minute (`YYYY-MM-DDTHH:MM`): cheap to keep while pages stream by."""
    return Counter(s[:16] for s in stamps if isinstance(s, str))


def buckets_from_minutes(minutes: Counter[str]) -> Counter[int]:
    out: Counter[int] = Counter()
    for m, n in minutes.items():
        out[bucket_of(m)] += n
    return out


def zone(name: str | None) -> dt.tzinfo:
    """The tzinfo of an IANA zone name; UTC for None or an unknown name."""
    if not name or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("project timezone %r is unknown here: counting days in UTC", name)
        return UTC


def days_of(buckets: Counter[int], tz: dt.tzinfo) -> Counter[str]:
    """Bucket counts summed into calendar days of `tz` (ISO dates)."""
    out: Counter[str] = Counter()
    for b, n in buckets.items():
        day = dt.datetime.fromtimestamp(b * BUCKET_SECONDS, UTC).astimezone(tz).date()
        out[day.isoformat()] += n
    return out


def day_bounds(day: str, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a calendar day of `tz`, as UTC instants."""
    d = dt.date.fromisoformat(day)
    lo = dt.datetime(d.year, d.month, d.day, tzinfo=tz)
    hi = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return lo.astimezone(UTC), hi.astimezone(UTC)


def warehouse_buckets() -> Counter[int] | None:
    """Rows of `events` per 15-minute bucket; None when `sync()` opened no warehouse or
    `events` was never loaded (nothing to compare). A warehouse that cannot be read raises
    WarehouseError."""
    with running_backend() as b:
        if b is None:
            return None
        return stream.bucket_counts(b, EVENTS_TABLE, "timestamp", BUCKET_SECONDS)


def warehouse_ids_since(since: dt.datetime) -> set[str] | None:
    """Ids of the warehouse's events at or after `since` (None: no warehouse opened, or
    `events` never loaded)."""
    with running_backend() as b:
        if b is None:
            return None
        return stream.ids_since(b, EVENTS_TABLE, "timestamp", since)


def api_day_counts(client: GrowthOSClient, first: dt.date, last: dt.date) -> dict[str, int]:
    """Events per day the API holds over [first, last], a request per `QUERY_DAYS` days.

    The requests go out together (at most PARALLEL_QUERIES at once; the client paces them):
    a backfill of several years waits for these counts before its first page, and one after
    the other they cost a round trip each."""
    spans: list[tuple[dt.date, dt.date]] = []
    a = first
    while a <= last:
        b = min(last, a + dt.timedelta(days=QUERY_DAYS - 1))
        spans.append((a, b))
        a = b + dt.timedelta(days=1)

    def ask(span: tuple[dt.date, dt.date]) -> dict[str, Any]:
        body: dict[str, Any] = client.request("POST", COUNT_PATH, idempotent=True, json={
            "type": "event_count", "interval": "day", "from": span[0].isoformat(),
            "to": span[1].isoformat()})
        return body

    if len(spans) > 1:
        with ThreadPoolExecutor(min(PARALLEL_QUERIES, len(spans)),
                                thread_name_prefix="growthos-counts") as pool:
            bodies = list(pool.map(ask, spans))
    else:
        bodies = [ask(span) for span in spans]
    out: dict[str, int] = {}
    for body in bodies:
        for item in body.get("data") or []:
            groups = item.get("groups")
            n = (sum(int(v) for v in groups.values()) if isinstance(groups, dict)
                 else int(item.get("count") or 0))
            if n:
                out[str(item["date"])[:10]] = out.get(str(item["date"])[:10], 0) + n
    return out


def query_requests(first: dt.date, last: dt.date) -> int:
    """How many requests `api_day_counts` sends for [first, last]."""
    return max(1, -(-((last - first).days + 1) // QUERY_DAYS))


def differing(api: dict[str, int], ours: Counter[str]) -> list[str]:
    """Days where the API's count and ours differ, newest first."""
    return sorted((d for d in set(api) | set(ours) if api.get(d, 0) != ours.get(d, 0)),
                  reverse=True)


def project_timezone(client: GrowthOSClient) -> str | None:
    """The project's time zone (`GET /settings` `timezone`), None if unreadable."""
    try:
        body = client.request("GET", "/settings")
    except Exception as exc:  # noqa: BLE001  (a key without settings:read: keep UTC)
        logger.info("cannot read the project's timezone (%s): counting days in UTC", exc)
        return None
    tz = body.get("timezone")
    return str(tz) if tz else None


# ---- merged contacts -------------------------------------------------------------------------
def contact_changes(after_load: str | None) -> tuple[list[str], list[str], str | None] | None:
    """(contacts that vanished, timestamps of events whose `user_id` differs from their
    contact's current external id) from the warehouse, for contact changes loaded after load id
    `after_load`, and the newest such load id. None when the warehouse holds no events and
    contacts with the columns this needs (`events.contact_id`, `events.user_id`)."""
    with running_backend() as b:
        s = current()
        if b is None or s is None:
            return None
        tables = s.tables
        cols = {t: set(tables.get(t, {}).get("columns", {})) for t in ("events", "contacts")}
        if not {"contact_id", "user_id"} <= cols["events"] or not cols["contacts"]:
            return None
        # The contact's external id: `external_id` in the docs' examples, `user_id` in their
        # OpenAPI skeleton.
        ext = next((n for n in ("external_id", "user_id") if n in cols["contacts"]), None)
        log = "_growthos_deletions" if "_growthos_deletions" in tables else None
        top = stream.newest_load(b, ["contacts", *([log] if log else [])])
        if after_load is None:  # the first check: the events just loaded are attributed as is
            return [], [], top
        vanished = (stream.vanished_with_events(b, log, EVENTS_TABLE, "contacts", after_load)
                    if log else [])
        stamps = ([_iso(v) for v in stream.stale_attribution(
            b, EVENTS_TABLE, "contacts", "timestamp", ext, after_load)]
            if ext is not None else [])
        return vanished, stamps, top


def event_stamps_of(contact_ids: list[str]) -> dict[str, list[str]]:
    """contact id -> timestamps of the warehouse's events of that contact."""
    if not contact_ids:
        return {}
    with running_backend() as b:
        if b is None:
            return {}
        found = stream.values_by_key(b, EVENTS_TABLE, "contact_id", contact_ids, "timestamp")
    return {cid: [_iso(t) for t in stamps] for cid, stamps in found.items()}


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=UTC)
        d = d.astimezone(UTC)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return str(value)
