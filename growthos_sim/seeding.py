"""Build the initial world from a seed: two years of history before the server clock."""

from __future__ import annotations

import random

from . import fake
from .dialect import DOCUMENT, Dialect
from .generate import (
    DEFAULT_KEY,
    TWO_YEARS_MS,
    add_key,
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
    new_waitlist,
    new_webhook,
)
from .table import Record
from .util import DAY_MS, freeze, iso_ms, new_id
from .world import ANCHOR_MS, Clock, World


def _between(rng: random.Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * max(1, hi - lo))


def build_world(seed: int, n_contacts: int, n_events: int,
                keys: dict[str, list[str]] | None = None, dialect: Dialect = DOCUMENT) -> World:
    """Generate a consistent world: every reference points at an existing record."""
    rng = random.Random(seed)
    now = ANCHOR_MS
    start = now - TWO_YEARS_MS
    project: Record = {"project_id": new_id(rng, "proj_"), "name": "Acme Growth",
                       "domain": "acme.example.com", "timezone": "Europe/Berlin",
                       "default_from_email": "hello@acme.example.com",
                       "created_at": iso_ms(start - 30 * DAY_MS),
                       "updated_at": iso_ms(start - 30 * DAY_MS)}
    w = World(seed=seed, clock=Clock(now), rng=random.Random(seed * 7919 + 1), project=project,
              dialect=dialect)
    for token, scopes in (keys or {DEFAULT_KEY: ["*"]}).items():
        add_key(w, token, scopes, start - 29 * DAY_MS, rng)

    created = sorted(_between(rng, start, now) for _ in range(n_contacts))
    contacts: list[Record] = []
    for at in created:
        upd = at if rng.random() < 0.4 else _between(rng, at, now)
        contacts.append(new_contact(w, rng, at, upd))
    # When each contact stops being active: its deletion, or now. Nothing of a deleted contact
    # (an update, an event) happens after its deletion.
    ends = [now] * len(contacts)
    for k, (contact, at) in enumerate(zip(contacts, created)):
        if rng.random() < 0.01:
            ends[k] = _between(rng, at, now)
            w.contacts.soft_delete(contact["id"], iso_ms(ends[k]))
            contact["updated_at"] = min(contact["updated_at"], iso_ms(ends[k]))
    live = [c for c in contacts if c["id"] not in w.contacts.deleted] or contacts

    def pick() -> Record:
        return live[int(rng.random() * len(live))]

    for _ in range(min(40, 12 + n_contacts // 20000)):
        seg = new_segment(w, rng, _between(rng, start, now - 60 * DAY_MS))
        frac = rng.uniform(0.02, 0.3)
        for c in live:
            if rng.random() < frac:
                add_member(w, seg["id"], c, max(_between(rng, start, now), 0))
        if rng.random() < 0.5:
            seg["updated_at"] = iso_ms(_between(rng, now - 60 * DAY_MS, now))
    # Member tables were filled out of time order; sort them once.
    for sid, members in w.members.items():
        members.bulk_load(list(members.rows.values()))
        w.sync_segment(sid)

    for _ in range(3):
        prog = new_program(w, rng, _between(rng, start, start + 90 * DAY_MS))
        n_links = max(3, n_contacts * 8 // 100 // 3)
        times = sorted(_between(rng, start + 90 * DAY_MS, now) for _ in range(n_links))
        for t in times:
            link = new_link(w, rng, prog["id"], pick(), t)
            for _ in range(min(8, int(rng.expovariate(1.0)))):
                new_conversion(w, rng, link, pick(), _between(rng, t, now))
        for link in w.links[prog["id"]].rows.values():
            ct = w.conversions[link["code"]]
            ct.bulk_load(list(ct.rows.values()))

    for _ in range(25):
        camp = new_campaign(w, rng, _between(rng, start, now - 10 * DAY_MS))
        if camp["status"] != "draft":
            sent = rng.randint(100, max(200, n_contacts))
            w.campaign_stats[camp["id"]] = campaign_stats(rng, camp, sent, now - rng.randint(1, 9)
                                                          * DAY_MS)
            camp["updated_at"] = w.campaign_stats[camp["id"]]["updated_at"]

    for kind in ("nps", "csat", "custom", "nps", "csat"):
        srv = new_survey(w, rng, _between(rng, start, start + 180 * DAY_MS), kind)
        n_resp = max(5, n_contacts * 3 // 100)
        for t in sorted(_between(rng, start + 180 * DAY_MS, now) for _ in range(n_resp)):
            new_response(w, rng, srv, pick(), t)

    for _ in range(2):
        wl = new_waitlist(w, rng, _between(rng, start, start + 60 * DAY_MS))
        for t in sorted(_between(rng, start + 60 * DAY_MS, now)
                        for _ in range(max(5, n_contacts // 20))):
            entry = new_entry(w, rng, wl, pick(), t)
            if rng.random() < 0.3:
                entry["status"] = "approved"

    for _ in range(4):
        hook = new_webhook(w, rng, _between(rng, start, start + 30 * DAY_MS))
        for t in sorted(_between(rng, now - 30 * DAY_MS, now) for _ in range(120)):
            new_delivery(w, rng, hook, t)
    for i in range(3):
        fid = new_id(rng, "fnl_")
        counts = sorted((rng.randint(50, max(100, n_contacts)) for _ in range(4)), reverse=True)
        w.funnels[fid] = {"id": fid, "name": ["Signup → Purchase", "Onboarding", "Parrainage"][i],
                          "steps": [{"name": f"Step {j + 1}", "event": ev, "count": n,
                                     "conversion_rate": round(n / counts[0], 4)}
                                    for j, (ev, n) in enumerate(zip(
                                        ["$page_view", "signup", "trial_started", "purchase"],
                                        counts))],
                          "from": iso_ms(now - 90 * DAY_MS)[:10], "to": iso_ms(now)[:10],
                          "updated_at": iso_ms(now - DAY_MS)}
    for interval in ("weekly", "monthly"):
        cid = new_id(rng, dialect.prefixes.get("coh_", "coh_"))
        w.cohorts[cid] = {"id": cid, "name": f"{interval.title()} retention",
                          "interval": interval,
                          "buckets": [{"cohort_start": iso_ms(now - (k + 1) * 28 * DAY_MS)[:10],
                                       "size": rng.randint(50, 500),
                                       "retention": [1.0] + sorted(
                                           (round(rng.random(), 3) for _ in range(k + 1)),
                                           reverse=True)} for k in range(6)],
                          "updated_at": iso_ms(now - DAY_MS)}

    _generate_events(w, rng, contacts, created, ends, n_events)
    return w


def _generate_events(w: World, rng: random.Random, contacts: list[Record], created: list[int],
                     ends: list[int], n: int) -> None:
    """Events of random contacts, each while its contact existed: after it was created and
    before it was deleted (sorted once at the end)."""
    if not contacts:
        return
    rows = []
    pid = w.project["project_id"]
    nc = len(contacts)
    rand = rng.random
    for _ in range(n):
        k = int(rand() * nc)
        contact, lo = contacts[k], created[k]
        ts = lo + int(rand() * (ends[k] - lo))
        eid = new_id(rng, "evt_")
        name, ev = fake.event(rng, eid, contact, ts, pid)
        rows.append((ts, eid, contact["id"], name, freeze(ev)))
    w.events.load_sorted(rows)
