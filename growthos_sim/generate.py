"""Deterministic data generation: the same seed and sizes always give the same world.

Builders here make one record each and are shared by the initial generation and by
/_sim/mutate, so records created later look like the seeded ones.
"""

from __future__ import annotations

import random

from . import fake
from .table import Record, Table
from .util import DAY_MS, HOUR_MS, iso_ms, new_id
from .world import ApiKeyInfo, World

TWO_YEARS_MS = 730 * DAY_MS
DEFAULT_KEY = "gos_sk_test_local"


def _id(w: World, rng: random.Random, prefix: str) -> str:
    """A new id of the kind whose document prefix is `prefix`, in the world's dialect."""
    return new_id(rng, w.dialect.prefixes.get(prefix, prefix))


def new_contact(w: World, rng: random.Random, created: int, updated: int | None = None) -> Record:
    i = len(w.contacts.rows)
    name, email = fake.person(rng, i)
    rec: Record = {
        "id": _id(w, rng, "con_"),
        "email": email,
        "external_id": None if rng.random() < 0.2 else f"usr_{i:07d}",
        "traits": fake.traits(rng, name, created),
        "tags": fake.tags(rng),
        "created_at": iso_ms(created),
        "updated_at": iso_ms(updated if updated is not None else created),
    }
    w.contacts.insert(rec)
    w.scores[rec["id"]] = {"engagement": rng.randint(0, 100), "lead": rng.randint(0, 100)}
    return rec


def _rules(rng: random.Random, depth: int = 0) -> Record:
    conds: list[Record] = []
    for _ in range(rng.randint(1, 3)):
        if depth < 2 and rng.random() < 0.25:
            conds.append(_rules(rng, depth + 1))
            continue
        op = rng.choice(["eq", "neq", "gt", "gte", "contains", "exists", "count_gte", "in"])
        cond: Record = {"field": rng.choice(["traits.plan", "traits.country", "tags",
                                             "events.purchase", "traits.seats"]),
                        "op": op, "value": None if op == "exists" else rng.choice(
                            ["pro", 3, ["US", "DE"], "vip", 100]),
                        "window": "30d" if op.startswith("count") else None}
        conds.append(cond)
    return {"operator": rng.choice(["AND", "OR"]), "conditions": conds}


def new_segment(w: World, rng: random.Random, created: int) -> Record:
    rec: Record = {"id": _id(w, rng, "seg_"),
                   "name": rng.choice(["Power users", "Churn risk", "Trialists", "Clientes VIP",
                                       "Nouveaux inscrits", "日本のユーザー", "Enterprise"])
                   + f" #{len(w.segments.rows) + 1}",
                   "description": None if rng.random() < 0.4 else fake.LOREM[:80],
                   "rules": _rules(rng), "contact_count": 0,
                   "created_at": iso_ms(created), "updated_at": iso_ms(created)}
    w.segments.insert(rec)
    w.members[rec["id"]] = Table("added_at", id_field="contact_id")
    return rec


def add_member(w: World, seg_id: str, contact: Record, at: int) -> None:
    t = w.members[seg_id]
    if t.get(contact["id"], include_deleted=True) is None:
        t.insert({"contact_id": contact["id"], "email": contact["email"], "added_at": iso_ms(at)})


def new_program(w: World, rng: random.Random, created: int) -> Record:
    rec: Record = {
        "id": _id(w, rng, "prog_"),
        "name": rng.choice(["Give $10, get $10", "Ambassadors", "Parrainage", "友達紹介"]),
        "reward_type": rng.choice(["credit", "discount", "cash", "custom"]),
        "reward_amount": rng.choice([5, 10, 20.5, 50]),
        "reward_currency": rng.choice(["USD", "EUR", None]),
        "referee_reward": None if rng.random() < 0.3 else {
            "type": "discount", "amount": 15, "currency": rng.choice(["USD", None])},
        "tiers": [{"referrals": 3, "bonus": 10}, {"referrals": 10, "bonus": 50}],
        "limits": {"max_referrals_per_contact": rng.choice([None, 25, 100]),
                   "conversion_window_days": rng.choice([30, 60, 90])},
        "status": rng.choice(["active", "active", "paused", "draft"]),
        "created_at": iso_ms(created), "updated_at": iso_ms(created),
    }
    w.programs.insert(rec)
    w.links[rec["id"]] = Table("created_at")
    return rec


def new_link(w: World, rng: random.Random, prog_id: str, contact: Record, created: int) -> Record:
    code = new_id(rng, "")[:8].upper()
    rec: Record = {"id": _id(w, rng, "lnk_"), "code": code,
                   "url": f"https://growthos.link/r/{code}", "program_id": prog_id,
                   "contact_id": contact["id"],
                   "channel": rng.choice(["email", "twitter", "facebook", "linkedin", "whatsapp",
                                          "sms", "copy_link", "other"]),
                   "clicks": 0, "conversions": 0, "created_at": iso_ms(created)}
    w.links[prog_id].insert(rec)
    w.link_by_code[code] = rec
    w.conversions[code] = Table("created_at")
    return rec


def new_conversion(w: World, rng: random.Random, link: Record, referred: Record,
                   created: int) -> Record:
    rec: Record = {"id": _id(w, rng, "conv_"), "link_code": link["code"],
                   "program_id": link["program_id"], "referrer_contact_id": link["contact_id"],
                   "referred_contact_id": referred["id"],
                   "conversion_event": rng.choice(["signup", "purchase", "subscription_started"]),
                   "metadata": rng.choice([{}, {"plan": "pro"}, {"order": {"total": 99.5}}]),
                   "reward_status": rng.choice(["pending", "issued", "issued", "rejected"]),
                   "created_at": iso_ms(created)}
    w.conversions[link["code"]].insert(rec)
    link["conversions"] += 1
    link["clicks"] += rng.randint(1, 6)
    w.links[link["program_id"]].touch(link["id"])
    return rec


def new_campaign(w: World, rng: random.Random, created: int) -> Record:
    kind = rng.choice(["lifecycle", "broadcast"])
    seg = rng.choice(list(w.segments.rows)) if w.segments.rows else None
    rec: Record = {
        "id": _id(w, rng, "camp_"), "name": rng.choice(["Welcome series", "Newsletter",
                                                        "Win-back", "Lancement été", "セール"]),
        "type": kind,
        "status": rng.choice(["draft", "scheduled", "active", "active", "paused", "completed",
                              "archived"]),
        "segment_id": seg, "subject": None if kind == "lifecycle" else "Big news 🎉",
        "template_id": None if kind == "lifecycle" else f"tmpl_{rng.randint(1, 40)}",
        "trigger": {"event": "signup", "segment_id": seg} if kind == "lifecycle" else None,
        "steps": [{"delay": f"{d}d", "subject": f"Step {i + 1}", "template_id": f"tmpl_{i + 1}"}
                  for i, d in enumerate(rng.sample([0, 1, 2, 3, 7, 14], 3))]
        if kind == "lifecycle" else [],
        "scheduled_at": iso_ms(created + rng.randint(1, 30) * DAY_MS) if kind == "broadcast"
        else None,
        "created_at": iso_ms(created), "updated_at": iso_ms(created),
    }
    w.campaigns.insert(rec)
    w.campaign_stats[rec["id"]] = campaign_stats(rng, rec, 0, created)
    return rec


def campaign_stats(rng: random.Random, camp: Record, sent: int, at: int) -> Record:
    delivered = int(sent * rng.uniform(0.9, 0.99))
    opened = int(delivered * rng.uniform(0.2, 0.6))
    clicked = int(opened * rng.uniform(0.05, 0.3))
    bounced = sent - delivered
    unsub = int(delivered * rng.uniform(0, 0.01))
    d = delivered or 1
    return {"campaign_id": camp["id"], "status": camp["status"],
            "stats": {"sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
                      "bounced": bounced, "unsubscribed": unsub,
                      "open_rate": round(opened / d, 4), "click_rate": round(clicked / d, 4),
                      "bounce_rate": round(bounced / sent, 4) if sent else 0.0,
                      "unsubscribe_rate": round(unsub / d, 4)},
            "updated_at": iso_ms(at)}


def new_survey(w: World, rng: random.Random, created: int, kind: str | None = None) -> Record:
    kind = kind or rng.choice(["nps", "csat", "custom"])
    rec: Record = {
        "id": _id(w, rng, "srv_"),
        "name": {"nps": "NPS trimestral", "csat": "Support CSAT", "custom": "Feature feedback"}[kind],
        "type": kind,
        "question": {"nps": "How likely are you to recommend us to a friend?",
                     "csat": "How satisfied were you with support?",
                     "custom": "What should we build next? 🤔"}[kind],
        "follow_up": None if rng.random() < 0.4 else "What is the main reason for your score?",
        "trigger": None if rng.random() < 0.3 else {"event": "login", "segment_id": None,
                                                    "delay_seconds": 30},
        "frequency_cap": None if rng.random() < 0.5 else {"max_per_contact": 1, "period_days": 90},
        "status": rng.choice(["active", "active", "paused", "draft", "archived"]),
        "created_at": iso_ms(created), "updated_at": iso_ms(created),
    }
    w.surveys.insert(rec)
    w.responses[rec["id"]] = Table("responded_at")
    w.survey_sent[rec["id"]] = 0
    return rec


def new_response(w: World, rng: random.Random, survey: Record, contact: Record,
                 at: int) -> Record:
    kind = survey["type"]
    score = rng.randint(0, 10) if kind == "nps" else rng.randint(1, 5) if kind == "csat" else None
    category = None
    if kind == "nps" and score is not None:
        category = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
    rec: Record = {"id": _id(w, rng, "resp_"), "contact_id": contact["id"], "score": score,
                   "comment": rng.choice([None, None, "Great product!", "Trop cher 😕",
                                          "使いやすい", fake.LOREM * 3, ""]),
                   "category": category, "responded_at": iso_ms(at)}
    w.responses[survey["id"]].insert(rec)
    w.survey_sent[survey["id"]] += rng.randint(1, 4)
    return rec


def new_waitlist(w: World, rng: random.Random, created: int) -> Record:
    rec: Record = {"id": _id(w, rng, "wl_"),
                   "name": rng.choice(["Beta access", "Mobile app", "Liste d'attente"]),
                   "slug": f"waitlist-{len(w.waitlists.rows) + 1}",
                   "referral_boost": rng.choice([1, 5, 10]), "auto_approve": rng.random() < 0.3,
                   "welcome_email_template_id": rng.choice([None, "tmpl_welcome"]),
                   "total_entries": 0, "created_at": iso_ms(created), "updated_at": iso_ms(created)}
    w.waitlists.insert(rec)
    w.entries[rec["id"]] = Table("joined_at")
    return rec


def new_entry(w: World, rng: random.Random, wl: Record, contact: Record, at: int) -> Record:
    t = w.entries[wl["id"]]
    rec: Record = {"id": _id(w, rng, "wle_"), "contact_id": contact["id"],
                   "email": contact["email"] or f"anon{len(t.rows)}@example.com",
                   "position": len(t.rows) + 1, "referral_count": rng.choice([0, 0, 0, 1, 2, 5]),
                   "status": "waiting", "joined_at": iso_ms(at)}
    t.insert(rec)
    wl["total_entries"] = len(t)
    w.waitlists.touch(wl["id"])
    return rec


def new_webhook(w: World, rng: random.Random, created: int) -> Record:
    rec: Record = {"id": _id(w, rng, "whep_"),
                   "url": f"https://hooks.example.com/growthos/{rng.getrandbits(32):08x}",
                   "events": rng.choice([["contact.*"], ["email.*", "survey.response_received"],
                                         ["referral.converted", "waitlist.*"]]),
                   "status": rng.choice(["active", "active", "disabled"]),
                   "description": rng.choice([None, "CRM sync", "Slack alerts"]),
                   "created_at": iso_ms(created), "updated_at": iso_ms(created)}
    w.webhooks.insert(rec)
    w.webhook_secrets[rec["id"]] = f"whsec_{rng.getrandbits(128):032x}"
    w.deliveries[rec["id"]] = Table("created_at", descending=True)
    return rec


def new_delivery(w: World, rng: random.Random, hook: Record, at: int) -> Record:
    ok = rng.random() < 0.9
    rec: Record = {"id": _id(w, rng, "whd_"),
                   "event": rng.choice(["contact.created", "email.opened", "referral.converted",
                                        "survey.response_received", "waitlist.entry_created"]),
                   "status": "delivered" if ok else "failed",
                   "http_status": 200 if ok else rng.choice([500, 502, 404, None]),
                   "attempt": 1 if ok else rng.randint(1, 5),
                   "delivered_at": iso_ms(at + 150) if ok else None,
                   "next_retry_at": None if ok else iso_ms(at + HOUR_MS),
                   "response_time_ms": rng.randint(20, 3000) if ok else None,
                   "created_at": iso_ms(at)}
    w.deliveries[hook["id"]].insert(rec)
    return rec


def add_key(w: World, token: str, scopes: list[str], created: int, rng: random.Random) -> None:
    rec: Record = {"id": _id(w, rng, "key_"), "name": f"key {len(w.keys) + 1}",
                   "key_hint": f"gos_sk_…{token[-4:]}", "scopes": scopes,
                   "created_at": iso_ms(created), "last_used_at": None}
    w.keys[token] = ApiKeyInfo(token=token, scopes=scopes, record=rec)
    w.api_keys.insert(rec)
