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
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .http import GrowthOSClient
from .replacements import EVENTS_TABLE, current, running_sql

logger = logging.getLogger("growthos_source")

BUCKET_SECONDS = 900
UTC = dt.timezone.utc
# The query endpoint answers at most this many daily intervals per request (our server's limit;
# a year is what the documented example's range suggests is ordinary).
QUERY_DAYS = 366
COUNT_PATH = "/analytics/query"
# Load ids compared as numbers (as text they would depend on collation); DECIMAL is accepted
# by every SQL destination (PostgreSQL has no DOUBLE).
_LOAD_ID = "CAST({} AS DECIMAL(24, 9))"


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
    """Rows of `events` per 15-minute bucket, or None when the warehouse cannot be read
    (first run: nothing to compare)."""
    with running_sql() as c:
        if c is None:
            return None
        try:
            ts = c.escape_column_name("timestamp")
            rows = c.execute_sql(
                f"SELECT FLOOR(EXTRACT(EPOCH FROM {ts}) / {BUCKET_SECONDS}), COUNT(*) "
                f"FROM {c.make_qualified_table_name(EVENTS_TABLE)} GROUP BY 1")
        except Exception as exc:  # noqa: BLE001  (table not created yet)
            logger.debug("cannot count events in the warehouse: %s", exc)
            return None
    return Counter({int(b): int(n) for b, n in rows or () if b is not None})


def warehouse_ids_since(since: dt.datetime) -> set[str] | None:
    """Ids of the warehouse's events at or after `since` (None if it cannot be read)."""
    with running_sql() as c:
        if c is None:
            return None
        try:
            rows = c.execute_sql(
                f"SELECT id FROM {c.make_qualified_table_name(EVENTS_TABLE)} "
                f"WHERE {c.escape_column_name('timestamp')} >= %s", since)
        except Exception as exc:  # noqa: BLE001  (table not created yet)
            logger.debug("cannot read event ids from the warehouse: %s", exc)
            return None
    return {str(r[0]) for r in rows or ()}


def api_day_counts(client: GrowthOSClient, first: dt.date, last: dt.date) -> dict[str, int]:
    """Events per day the API holds over [first, last], a request per `QUERY_DAYS` days."""
    out: dict[str, int] = {}
    a = first
    while a <= last:
        b = min(last, a + dt.timedelta(days=QUERY_DAYS - 1))
        body = client.request("POST", COUNT_PATH, idempotent=True, json={
            "type": "event_count", "interval": "day", "from": a.isoformat(),
            "to": b.isoformat()})
        for item in body.get("data") or []:
            groups = item.get("groups")
            n = (sum(int(v) for v in groups.values()) if isinstance(groups, dict)
                 else int(item.get("count") or 0))
            if n:
                out[str(item["date"])[:10]] = out.get(str(item["date"])[:10], 0) + n
        a = b + dt.timedelta(days=1)
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
    with running_sql() as c:
        s = current()
        if c is None or s is None:
            return None
        tables = s.tables
        cols = {t: set(tables.get(t, {}).get("columns", {})) for t in ("events", "contacts")}
        if not {"contact_id", "user_id"} <= cols["events"] or not cols["contacts"]:
            return None
        # The contact's external id: `external_id` in the docs' examples, `user_id` in their
        # OpenAPI skeleton.
        ext = next((n for n in ("external_id", "user_id") if n in cols["contacts"]), None)
        try:
            return _contact_changes(c, after_load, ext, "_growthos_deletions" in tables)
        except Exception as exc:  # noqa: BLE001  (tables not created in the warehouse yet)
            logger.debug("cannot read contact changes from the warehouse: %s", exc)
            return None


def _contact_changes(c: Any, after: str | None, ext: str | None, deletions: bool,
                     ) -> tuple[list[str], list[str], str | None]:
    q, ts = c.make_qualified_table_name, c.escape_column_name("timestamp")
    e, con, log = q(EVENTS_TABLE), q("contacts"), q("_growthos_deletions")
    tops = [f"SELECT MAX({_LOAD_ID.format('_dlt_load_id')}) FROM {con}"]
    if deletions:
        tops.append(f"SELECT MAX({_LOAD_ID.format('_dlt_load_id')}) FROM {log}")
    values = [Decimal(str(r[0])) for sql in tops for r in c.execute_sql(sql) or ()
              if r[0] is not None]
    top = str(max(values)) if values else None
    if after is None:  # the first check: the events just loaded are attributed as they are
        return [], [], top
    bound = after
    vanished: list[str] = []
    if deletions:
        rows = c.execute_sql(
            f"SELECT DISTINCT d.record_id FROM {log} d WHERE d.table_name = 'contacts' AND "
            f"{_LOAD_ID.format('d._dlt_load_id')} > {_LOAD_ID.format('%s')} AND EXISTS "
            f"(SELECT 1 FROM {e} WHERE {e}.contact_id = d.record_id)", bound)
        vanished = [str(r[0]) for r in rows or ()]
    stamps: list[str] = []
    if ext is not None:
        stale = c.execute_sql(
            f"SELECT DISTINCT {e}.{ts} FROM {e} JOIN {con} k ON k.id = {e}.contact_id "
            f"WHERE {_LOAD_ID.format('k._dlt_load_id')} > {_LOAD_ID.format('%s')} "
            f"AND k._deleted_at IS NULL "
            f"AND {e}.user_id IS DISTINCT FROM k.{c.escape_column_name(ext)}", bound)
        stamps = [_iso(r[0]) for r in stale or ()]
    return vanished, stamps, top


def event_stamps_of(contact_ids: list[str]) -> dict[str, list[str]]:
    """contact id -> timestamps of the warehouse's events of that contact."""
    if not contact_ids:
        return {}
    out: dict[str, list[str]] = {}
    with running_sql() as c:
        if c is None:
            return {}
        q, ts = c.make_qualified_table_name, c.escape_column_name("timestamp")
        for i in range(0, len(contact_ids), 500):
            part = contact_ids[i:i + 500]
            marks = ", ".join(["%s"] * len(part))
            rows = c.execute_sql(f"SELECT contact_id, {ts} FROM {q(EVENTS_TABLE)} "
                                 f"WHERE contact_id IN ({marks})", *part)
            for cid, t in rows or ():
                out.setdefault(str(cid), []).append(_iso(t))
    return out


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=UTC)
        d = d.astimezone(UTC)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return str(value)


def instant_windows(stamps: Iterable[str], span: dt.timedelta,
                    ) -> list[tuple[dt.datetime, dt.datetime]]:
    """[lo, hi) windows covering every instant of `stamps` (1 ms each). An instant joins the
    previous window while the window stays shorter than `span` (the time that holds about a
    page of events): a window costs a request however few events it holds, so instants
    within a page's reach share one, and a window never grows past the page it costs."""
    from .incremental import parse_ts

    points = sorted({parse_ts(s) for s in stamps})
    out: list[tuple[dt.datetime, dt.datetime]] = []
    one = dt.timedelta(milliseconds=1)
    for p in points:
        if out and p - out[-1][0] < span:
            out[-1] = (out[-1][0], p + one)
        else:
            out.append((p, p + one))
    return out
