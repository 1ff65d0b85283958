"""/_sim/mutate: a burst of realistic activity that also moves the server clock forward.

All activity is stamped inside (old now, new now], so incremental readers see it as new; the
one exception is late events (`{"events": {"late": {"1h": 50}}}`): received inside the window
like everything else, but with a `timestamp` that much older than their receipt, as an SDK that
was offline sends them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import fake
from .api.contacts import delete_contact_record, merge_records
from .generate import (
    add_member,
    campaign_stats,
    new_campaign,
    new_contact,
    new_conversion,
    new_delivery,
    new_entry,
    new_link,
    new_program,
    new_response,
    new_segment,
    new_survey,
    new_webhook,
)
from .table import Record
from .util import DAY_MS, iso_ms, new_id, parse_duration_ms
from .world import Batch, Work, World

Summary = dict[str, Any]


def default_day(w: World, days: float) -> dict[str, dict[str, Any]]:
    """What one ordinary day looks like for a world of this size (scaled by `days`)."""
    n = len(w.contacts)
    per_day = len(w.events) / 730

    def k(x: float, lo: int) -> int:
        return max(lo, int(x * days))

    return {
        "contacts": {"create": k(n * 0.005, 3), "update": k(n * 0.01, 5), "delete": k(n * 0.001, 1),
                     "merge": 1},
        "events": {"create": k(per_day, 50),
                   # A few late arrivals of every age the connector must cope with.
                   "late": {"3s": k(per_day * 0.004, 1), "1h": k(per_day * 0.003, 1),
                            "1d": k(per_day * 0.002, 1), "5d": k(per_day * 0.001, 1)}},
        "survey_responses": {"create": k(n * 0.002, 3)},
        "segment_memberships": {"create": k(n * 0.002, 3)},
        "referral_links": {"create": k(n * 0.001, 2)},
        "referral_conversions": {"create": k(n * 0.001, 2)},
        "campaigns": {"update": 2},
        "campaign_stats": {"update": 3},
        "waitlist_entries": {"create": k(n * 0.001, 2), "update": 2},
        "webhook_deliveries": {"create": 20},
        "segments": {"update": 1},
    }


def queued_event(ts: int, eid: str, contact_id: str, name: str, ev: Record) -> Work:
    """Processing of one queued event: attributed to the contact it belongs to *now* (a merge
    while it waited moved its contact's other events to the survivor; it follows them)."""
    def work(w: World, batch: Batch) -> None:
        cid = w.survivor(contact_id)
        if cid != contact_id:
            rec = w.contacts.get(cid, include_deleted=True)
            ev["contact_id"] = cid
            ev["user_id"] = None if rec is None else rec["external_id"]
        batch.add((ts, eid, cid, name, ev))
    return work


def _check_count(what: str, count: object) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{what} must be a count (an integer >= 0)")


def _check_events_option(option: str, value: object) -> None:
    """`events.late` is {age: count} (ages as `advance` takes them, e.g. "3s", "5d");
    `events.via_ingest` is a boolean."""
    if option == "via_ingest":
        if not isinstance(value, bool):
            raise ValueError("events.via_ingest must be true or false")
        return
    if not isinstance(value, dict):
        # A bad request body, not a programming error: the control handler answers ValueError
        # with 400, so TypeError would turn the user's mistake into a 500.
        raise ValueError(  # noqa: TRY004
            'events.late takes an object of age -> count, e.g. {"1h": 50, "5d": 20}')
    for age, count in value.items():
        try:
            age_ms = parse_duration_ms(str(age))
        except ValueError as e:
            raise ValueError(f"events.late: {e}") from None
        if age_ms <= 0:
            raise ValueError(f"events.late age {age!r} must be longer than 0s")
        _check_count(f"events.late.{age}", count)


class Mutator:
    """Applies a mutate request to a world (call with the world's lock held)."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.rng = w.rng

    def apply(self, spec: dict[str, Any]) -> Summary:
        w = self.w
        advance = parse_duration_ms(str(spec.get("advance", "0s")))
        plan = {k: v for k, v in spec.items() if k not in ("advance", "activity")}
        unknown = set(plan) - set(self.ops())
        if unknown:
            raise ValueError(f"unknown tables {sorted(unknown)}; known: {sorted(self.ops())}")
        for table, actions in plan.items():
            # Check the whole request first: a bad entry must not leave a burst half-applied.
            if not isinstance(actions, dict):
                raise ValueError(f"{table} takes an object of action counts, e.g. "  # noqa: TRY004
                                 '{"create": 10}')
            for action, count in actions.items():
                if table == "events" and action in ("late", "via_ingest"):
                    _check_events_option(action, count)
                    continue
                if action not in self.ops()[table]:
                    raise ValueError(f"{table} supports {sorted(self.ops()[table])}, not {action}")
                _check_count(f"{table}.{action}", count)
        if not plan and spec.get("activity", True) and advance:
            plan = default_day(w, advance / DAY_MS)
        start = w.clock.now()
        end = start + max(advance, 1)
        summary: Summary = {"from": iso_ms(start), "to": iso_ms(end)}
        for table, actions in plan.items():
            for action, count in actions.items():
                if table == "events":
                    queued = bool(actions.get("via_ingest", False))
                    if action == "late":
                        summary.setdefault(table, {})[action] = {
                            age: self.events_create(self._times(start, end, n),
                                                    parse_duration_ms(age), queued)
                            for age, n in count.items()}
                    elif action == "create":
                        summary.setdefault(table, {})[action] = self.events_create(
                            self._times(start, end, count), 0, queued)
                    continue
                fn = self.ops()[table][action]
                times = self._times(start, end, count)
                done = [r for t in times if (r := fn(t)) is not None]
                summary.setdefault(table, {})[action] = done
        w.clock.advance(end - start)
        w.process_due()
        summary["now"] = iso_ms(w.clock.now())
        if w.queue:
            summary["pending"] = len(w.queue)  # queued work still waiting for its delay
        return summary

    def ops(self) -> dict[str, dict[str, Callable[[int], Any]]]:
        return {
            "contacts": {"create": self.contact_create, "update": self.contact_update,
                         "delete": self.contact_delete, "merge": self.contact_merge},
            "events": {"create": self.event_create},
            "segments": {"create": lambda t: new_segment(self.w, self.rng, t)["id"],
                         "update": self.segment_update, "delete": self.segment_delete},
            "segment_memberships": {"create": self.member_create},
            "referral_programs": {"create": lambda t: new_program(self.w, self.rng, t)["id"]},
            "referral_links": {"create": self.link_create},
            "referral_conversions": {"create": self.conversion_create},
            "campaigns": {"create": lambda t: new_campaign(self.w, self.rng, t)["id"],
                          "update": self.campaign_update},
            "campaign_stats": {"update": self.stats_update},
            "surveys": {"create": self.survey_create},
            "survey_responses": {"create": self.response_create},
            "waitlist_entries": {"create": self.entry_create, "update": self.entry_approve},
            "webhook_endpoints": {"create": lambda t: new_webhook(self.w, self.rng, t)["id"],
                                  "delete": self.webhook_delete},
            "webhook_deliveries": {"create": self.delivery_create},
        }

    # ---- helpers ---------------------------------------------------------------------------
    def _times(self, start: int, end: int, count: int) -> list[int]:
        """`count` sorted random instants in (start, end]."""
        return sorted(start + 1 + int(self.rng.random() * (end - start - 1))
                      for _ in range(int(count)))

    def _pick(self, recs: list[Record]) -> Record | None:
        return recs[int(self.rng.random() * len(recs))] if recs else None

    def _contact(self) -> Record | None:
        c = self.w.contacts
        ids = list(c.rows)
        for _ in range(20):
            rid = ids[int(self.rng.random() * len(ids))] if ids else None
            if rid is not None and rid not in c.deleted:
                return c.rows[rid]
        return self._pick(list(c.iter_live()))

    # ---- actions (each returns the id it touched, or None) ----------------------------------
    def contact_create(self, t: int) -> str:
        return str(new_contact(self.w, self.rng, t)["id"])

    def contact_update(self, t: int) -> str | None:
        c = self._contact()
        if c is None or c["updated_at"] >= iso_ms(t):
            return None
        c["traits"]["last_seen_plan"] = self.rng.choice(fake.PLANS)
        c["traits"]["score_v2"] = round(self.rng.random() * 100, 2)
        c["updated_at"] = iso_ms(t)
        self.w.contacts.touch(c["id"])
        return str(c["id"])

    def contact_delete(self, t: int) -> str | None:
        c = self._contact()
        if c is None:
            return None
        delete_contact_record(self.w, c, iso_ms(t))
        return str(c["id"])

    def contact_merge(self, t: int) -> str | None:
        a, b = self._contact(), self._contact()
        if a is None or b is None or a is b:
            return None
        merge_records(self.w, a, b, False, iso_ms(t))
        return f"{b['id']}->{a['id']}"

    def event_create(self, t: int) -> str | None:
        return self.w.events.ids[-1] if self.events_create([t]) else None

    def events_create(self, times: list[int], age_ms: int = 0, queued: bool = False) -> int:
        """New events received at sorted `times`, each with a `timestamp` `age_ms` before its
        receipt (0: an ordinary event; more: a late one, landing inside the stream's history).
        `received_at` is the receipt time. Returns how many were made.

        `queued` (`"via_ingest": true`) sends them the Ingest API's way: visible only once
        server time passes receipt + the processing delay, so the last few seconds of a burst
        are still unprocessed when it returns. Without it they are visible at once, as the
        connector's tests written before the Ingest API expect."""
        picks = []
        for t in times:
            c = self._contact()
            if c is not None:
                picks.append((t, new_id(self.rng, "evt_"), c))
        # Events sharing a millisecond (always when the clock does not advance) are stored in
        # id order: draw the ids first, so the same seed gives the same stream.
        picks.sort(key=lambda p: (p[0], p[1]))
        made = []
        for t, eid, c in picks:
            ts = t - age_ms
            name, ev = fake.event(self.rng, eid, c, ts, self.w.project["project_id"])
            ev["received_at"] = iso_ms(t)
            made.append((ts, eid, c["id"], name, ev))
            if queued:
                self.w.receive(t, queued_event(ts, eid, c["id"], name, ev))
        if not queued:
            self.w.events.add_many(made)
        return len(picks)

    def segment_update(self, t: int) -> str | None:
        s = self._pick(list(self.w.segments.iter_live()))
        if s is None:
            return None
        s["name"] = s["name"].split(" (")[0] + f" (v{int(self.rng.random() * 100)})"
        s["updated_at"] = iso_ms(t)
        self.w.segments.touch(s["id"])
        return str(s["id"])

    def segment_delete(self, t: int) -> str | None:
        s = self._pick(list(self.w.segments.iter_live()))
        if s is None:
            return None
        self.w.segments.soft_delete(s["id"], iso_ms(t))
        return str(s["id"])

    def member_create(self, t: int) -> str | None:
        s, c = self._pick(list(self.w.segments.iter_live())), self._contact()
        if s is None or c is None or self.w.members[s["id"]].get(c["id"], include_deleted=True):
            return None
        add_member(self.w, s["id"], c, t)
        self.w.sync_segment(s["id"])
        return f"{s['id']}:{c['id']}"

    def link_create(self, t: int) -> str | None:
        p, c = self._pick(list(self.w.programs.iter_live())), self._contact()
        if p is None or c is None:
            return None
        return str(new_link(self.w, self.rng, p["id"], c, t)["id"])

    def conversion_create(self, t: int) -> str | None:
        links = [lk for tb in self.w.links.values() for lk in tb.iter_live()]
        link, c = self._pick(links), self._contact()
        if link is None or c is None:
            return None
        return str(new_conversion(self.w, self.rng, link, c, t)["id"])

    def campaign_update(self, t: int) -> str | None:
        camp = self._pick(list(self.w.campaigns.iter_live()))
        if camp is None:
            return None
        camp["status"] = self.rng.choice(["active", "paused", "completed"])
        camp["updated_at"] = iso_ms(t)
        self.w.campaigns.touch(camp["id"])
        self.w.campaign_stats[camp["id"]]["status"] = camp["status"]
        return str(camp["id"])

    def stats_update(self, t: int) -> str | None:
        camp = self._pick([c for c in self.w.campaigns.iter_live() if c["status"] != "draft"])
        if camp is None:
            return None
        old = self.w.campaign_stats[camp["id"]]["stats"]["sent"]
        self.w.campaign_stats[camp["id"]] = campaign_stats(
            self.rng, camp, old + int(self.rng.random() * 500) + 1, t)
        return str(camp["id"])

    def survey_create(self, t: int) -> str:
        """A survey imported with backdated history: its responses predate other surveys'
        newest ones, which is what per-parent incremental state exists for."""
        srv = new_survey(self.w, self.rng, t)
        for _ in range(5 + int(self.rng.random() * 10)):
            c = self._contact()
            if c is not None:
                new_response(self.w, self.rng, srv, c, t - 1 - int(self.rng.random() * 30 * DAY_MS))
        return str(srv["id"])

    def response_create(self, t: int) -> str | None:
        srv, c = self._pick(list(self.w.surveys.iter_live())), self._contact()
        if srv is None or c is None:
            return None
        return str(new_response(self.w, self.rng, srv, c, t)["id"])

    def entry_create(self, t: int) -> str | None:
        wl, c = self._pick(list(self.w.waitlists.iter_live())), self._contact()
        if wl is None or c is None:
            return None
        return str(new_entry(self.w, self.rng, wl, c, t)["id"])

    def entry_approve(self, t: int) -> str | None:
        wl = self._pick(list(self.w.waitlists.iter_live()))
        if wl is None:
            return None
        table = self.w.entries[wl["id"]]
        e = next((e for e in table.iter_live() if e["status"] == "waiting"), None)
        if e is None:
            return None
        e["status"] = "approved"
        table.touch(e["id"])
        return str(e["id"])

    def webhook_delete(self, t: int) -> str | None:
        h = self._pick(list(self.w.webhooks.iter_live()))
        if h is None:
            return None
        self.w.webhooks.soft_delete(h["id"], iso_ms(t))
        return str(h["id"])

    def delivery_create(self, t: int) -> str | None:
        h = self._pick(list(self.w.webhooks.iter_live()))
        if h is None:
            return None
        return str(new_delivery(self.w, self.rng, h, t)["id"])

