"""The simulator's state: every table, the server clock, and the summaries derived from them.

Derived figures (segment sizes, survey and program stats, the leaderboard, the overview) are
computed from the rows on demand, so they always agree with the rows they summarize.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .dialect import DOCUMENT, Dialect
from .events import EventStore
from .table import Record, Table
from .util import DAY_MS, iso_date, iso_ms, parse_ms

# The server clock starts here for every seed, so data is identical whenever the server starts.
ANCHOR_MS = parse_ms("2026-06-01T00:00:00Z")


class Clock:
    """Server time: fixed at start, moved by /_sim/mutate; strictly increasing for writes."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms

    def now(self) -> int:
        return self._now

    def tick(self) -> int:
        """A fresh write timestamp: 1 ms after the previous one, so `updated_at` always grows."""
        self._now += 1
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms


EventRow = tuple[int, str, str, str, dict[str, Any]]  # (ts_ms, id, contact_id, name, event)


class Batch:
    """Events processed in one go, added to the stream together (one splice for a burst).
    Work that reads or moves stored events (a merge) calls `flush` first, so it sees the
    events processed before it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.rows: list[EventRow] = []

    def add(self, row: EventRow) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        if self.rows:
            self.world.events.add_many(self.rows)
            self.rows = []


Work = Callable[["World", Batch], None]


class ProcessingQueue:
    """Accepted work (Ingest API messages, mutate's `via_ingest` events) waiting for its
    processing time: the server processes it once server time reaches receipt + delay, in
    order of (due time, arrival), so one user's messages keep their order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Work]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due_ms: int, work: Work) -> None:
        heapq.heappush(self._heap, (due_ms, next(self._seq), work))

    def pop_due(self, now_ms: int) -> list[Work]:
        out = []
        while self._heap and self._heap[0][0] <= now_ms:
            out.append(heapq.heappop(self._heap)[2])
        return out


# The docs: "events processed within 5 seconds (p95)" after the 202.
DEFAULT_PROCESSING_DELAY_MS = 5000


@dataclass
class ApiKeyInfo:
    """One API key the server accepts; the record is what GET /settings/keys shows."""

    token: str
    scopes: list[str]
    record: Record
    revoked_at_ms: int | None = None


@dataclass
class World:
    """All simulator data. Guard every access with `lock` (handlers run on many threads)."""

    seed: int
    clock: Clock
    rng: random.Random
    project: Record
    dialect: Dialect = DOCUMENT  # the shapes served (ids are minted with its prefixes)
    contacts: Table = field(default_factory=lambda: Table("created_at"))
    scores: dict[str, dict[str, int]] = field(default_factory=dict)
    segments: Table = field(default_factory=lambda: Table("created_at"))
    members: dict[str, Table] = field(default_factory=dict)
    programs: Table = field(default_factory=lambda: Table("created_at"))
    links: dict[str, Table] = field(default_factory=dict)
    link_by_code: dict[str, Record] = field(default_factory=dict)
    conversions: dict[str, Table] = field(default_factory=dict)
    campaigns: Table = field(default_factory=lambda: Table("created_at"))
    campaign_stats: dict[str, Record] = field(default_factory=dict)
    surveys: Table = field(default_factory=lambda: Table("created_at"))
    survey_sent: dict[str, int] = field(default_factory=dict)
    responses: dict[str, Table] = field(default_factory=dict)
    waitlists: Table = field(default_factory=lambda: Table("created_at"))
    entries: dict[str, Table] = field(default_factory=dict)
    webhooks: Table = field(default_factory=lambda: Table("created_at"))
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    deliveries: dict[str, Table] = field(default_factory=dict)
    events: EventStore = field(default_factory=EventStore)
    funnels: dict[str, Record] = field(default_factory=dict)
    cohorts: dict[str, Record] = field(default_factory=dict)
    keys: dict[str, ApiKeyInfo] = field(default_factory=dict)  # token -> key
    api_keys: Table = field(default_factory=lambda: Table("created_at"))
    # Accepted but not yet processed: invisible to every read (stream, counts, truth) until
    # server time reaches receipt + `processing_delay_ms`. Only server time counts (the clock
    # moves with /_sim/mutate `advance`), never wall-clock time, so runs are reproducible.
    processing_delay_ms: int = DEFAULT_PROCESSING_DELAY_MS
    queue: ProcessingQueue = field(default_factory=ProcessingQueue)
    ingest: Any = None  # ingest.IngestState, made on first use (identities, message ids)
    merged_into: dict[str, str] = field(default_factory=dict)  # merged contact -> target
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Bumped by every write (API writes, /_sim/ mutations, processed ingest work): derived
    # views computed from many records are cached per revision, as a real API precomputes
    # them. Recomputing the leaderboard for each of its pages held the world lock for ~70 %
    # of the server's time while a sync read it, and slowed every other request with it.
    revision: int = 0
    _derived: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)

    def changed(self) -> None:
        """Note a write: cached derived views are stale."""
        self.revision += 1

    # ---- processing ----------------------------------------------------------------------
    def survivor(self, contact_id: str) -> str:
        """The contact that holds `contact_id`'s events now: itself, or where merges took it."""
        seen = {contact_id}
        while contact_id in self.merged_into:
            contact_id = self.merged_into[contact_id]
            if contact_id in seen:  # a cycle cannot happen (sources are deleted); be safe
                break
            seen.add(contact_id)
        return contact_id

    def receive(self, received_ms: int, work: Work) -> None:
        """Queue work received at `received_ms`; processed once the clock passes the delay
        (at once when the delay is 0)."""
        self.queue.push(received_ms + self.processing_delay_ms, work)
        self.process_due()

    def process_due(self) -> int:
        """Process every queued piece of work whose time has come. Returns how many."""
        due = self.queue.pop_due(self.clock.now())
        if not due:
            return 0
        batch = Batch(self)
        for work in due:
            work(self, batch)
        batch.flush()
        self.changed()
        return len(due)

    # ---- derived views -------------------------------------------------------------------
    def contact_email(self, contact_id: str) -> str | None:
        rec = self.contacts.get(contact_id, include_deleted=True)
        return None if rec is None else rec["email"]

    def sync_segment(self, seg_id: str) -> None:
        """Keep a segment's `contact_count` equal to its live member rows."""
        seg = self.segments.rows[seg_id]
        n = len(self.members[seg_id])
        if seg["contact_count"] != n:
            seg["contact_count"] = n
            self.segments.touch(seg_id)

    def segments_of(self, contact_id: str) -> list[str]:
        return [sid for sid, t in self.members.items()
                if t.get(contact_id) is not None and self.segments.get(sid) is not None]

    def referral_stats(self, contact_id: str) -> Record:
        made = conv = 0
        for table in self.links.values():
            for link in table.rows.values():
                if link["contact_id"] == contact_id:
                    made += 1
                    conv += link["conversions"]
        return {"referrals_made": made, "conversions": conv}

    def profile(self, contact: Record) -> Record:
        """GET /contacts/{id}: the contact plus scores, segment ids and referral stats."""
        out = dict(contact)
        out["scores"] = self.scores[contact["id"]]
        out["segments"] = self.segments_of(contact["id"])
        out["referral_stats"] = self.referral_stats(contact["id"])
        return out

    def program_stats(self, pid: str) -> Record:
        links = self.links[pid]
        conv = issued = 0
        for link in links.rows.values():
            t = self.conversions[link["code"]]
            conv += len(t)
            issued += sum(1 for c in t.iter_live() if c["reward_status"] == "issued")
        return {"links": len(links), "conversions": conv, "rewards_issued": issued}

    def leaderboard(self, pid: str) -> list[Record]:
        """Contacts ranked by referred sign-ups in one program (ties broken by contact id);
        computed once per revision (callers must not change the rows)."""
        hit = self._derived.get(("leaderboard", pid))
        if hit is not None and hit[0] == self.revision:
            return hit[1]  # type: ignore[no-any-return]
        rows = self._leaderboard(pid)
        self._derived[("leaderboard", pid)] = (self.revision, rows)
        return rows

    def _leaderboard(self, pid: str) -> list[Record]:
        prog = self.programs.rows[pid]
        per: dict[str, list[int]] = {}
        for link in self.links[pid].iter_live():
            agg = per.setdefault(link["contact_id"], [0, 0])
            for c in self.conversions[link["code"]].iter_live():
                agg[0] += 1
                agg[1] += c["reward_status"] == "issued"
        ranked = sorted(per.items(), key=lambda kv: (-kv[1][0], kv[0]))
        rows = []
        tiers = sorted(prog["tiers"], key=lambda t: t["referrals"])
        for rank, (cid, (refs, convs)) in enumerate(ranked, start=1):
            tier = None
            for i, t in enumerate(tiers):
                if refs >= t["referrals"]:
                    tier = f"tier_{i + 1}"
            rows.append({"rank": rank, "contact_id": cid, "email": self.contact_email(cid),
                         "referrals": refs, "conversions": convs, "tier": tier})
        return rows

    def survey_stats(self, sid: str) -> Record:
        survey = self.surveys.rows[sid]
        scores = [r["score"] for r in self.responses[sid].iter_live()]
        total = len(self.responses[sid])
        sent = max(self.survey_sent[sid], total)
        prom = sum(1 for r in self.responses[sid].iter_live() if r["category"] == "promoter")
        det = sum(1 for r in self.responses[sid].iter_live() if r["category"] == "detractor")
        pas = sum(1 for r in self.responses[sid].iter_live() if r["category"] == "passive")
        numeric = [s for s in scores if s is not None]
        nps = None
        if survey["type"] == "nps" and total:
            nps = round(100.0 * (prom - det) / total, 1)
        last = max((r["responded_at"] for r in self.responses[sid].iter_live()),
                   default=survey["updated_at"])
        return {
            "survey_id": sid, "total_sent": sent, "total_responses": total,
            "response_rate": round(total / sent, 4) if sent else 0.0,
            "nps_score": nps,
            "breakdown": {"promoters": prom, "passives": pas, "detractors": det},
            "average_score": round(sum(numeric) / len(numeric), 3) if numeric else None,
            "updated_at": max(last, survey["updated_at"]),
        }

    def overview(self) -> Record:
        now = self.clock.now()
        since30 = iso_ms(now - 30 * DAY_MS)
        contacts_30d = sum(1 for c in self.contacts.iter_live() if c["created_at"] >= since30)
        today = iso_date(now)
        events_today = sum(n for (d, _), n in self.events.daily.items() if d == today)
        days = {d for d, _ in self.events.daily}
        nps_scores = [s["nps_score"] for s in (self.survey_stats(sid) for sid in self.surveys.rows
                      if self.surveys.get(sid) is not None) if s["nps_score"] is not None]
        links = sum(len(t) for t in self.links.values())
        convs = sum(len(t) for t in self.conversions.values())
        return {
            "total_contacts": len(self.contacts),
            "contacts_30d": contacts_30d,
            "events_today": events_today,
            "events_avg_daily": round(len(self.events) / len(days), 2) if days else 0.0,
            "active_campaigns": sum(1 for c in self.campaigns.iter_live()
                                    if c["status"] == "active"),
            "nps_score": round(sum(nps_scores) / len(nps_scores), 1) if nps_scores else None,
            "referral_conversion_rate": round(convs / links, 4) if links else 0.0,
        }

    def event_counts(self, from_date: str, to_date: str, event: str | None) -> dict[str, Any]:
        """Daily event counts per event name over [from_date, to_date] (dates inclusive)."""
        by_day: dict[str, dict[str, int]] = {}
        for (d, name), n in self.events.daily.items():
            if from_date <= d <= to_date and (event is None or name == event):
                by_day.setdefault(d, {})[name] = n
        return by_day
