"""Realistic, messy field values: unicode names, free-form traits, nested event context.

Every function takes the `random.Random` to draw from, so output is a pure function of the seed.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Any

from .util import iso_ms

FIRST = ["Ana", "José", "Zoë", "Łukasz", "Søren", "Ναταλία", "Дмитрий", "李娜", "さくら", "محمد",
         "Ngozi", "Siobhán", "Björk", "Çağla", "Nguyễn", "Priya", "Mateus", "Olúwaseun", "Ève",
         "Jörg", "Aarav", "Chloé", "Renée", "Tomás", "Ayşe", "Kwame", "Anaïs", "Mikołaj", "Ji-woo",
         "Leilani", "Fatima", "Håkon", "Émile", "Dvořák", "Sam", "Alex", "🚀 Rocket", "Noor"]
LAST = ["García", "O'Brien", "Müller", "Nakamura", "Kowalski", "Ødegaard", "Иванов", "王", "Smith",
        "Nguyễn", "Okafor", "Fernández", "Lefèvre", "Çelik", "Johansson", "Patel", "da Silva",
        "Schröder", "Ó Briain", "Kim", "Al-Fulan", "Novák", "Rossi", "Dubois", "van der Berg"]
DOMAINS = ["example.com", "acme.io", "gmail.test", "startup.dev", "xn--r8jz45g.jp", "firma.de", "mail.test"]
TAGS = ["vip", "beta", "newsletter", "churn-risk", "enterprise", "trial", "partner", "référé",
        "webinar-2025", "power_user", "早期"]
PLANS = ["free", "starter", "pro", "enterprise"]
COUNTRIES = ["US", "DE", "FR", "BR", "JP", "IN", "NG", "GB", "ES", "PL", "KR", "CN", "MX"]
EVENTS = ["$page_view", "$identify", "$survey_responded", "signup", "login", "purchase",
          "feature_used", "invite_sent", "email.opened", "email.clicked", "trial_started",
          "subscription_upgraded", "checkout_started", "search", "referral.link_clicked"]
EVENT_WEIGHTS = [30, 4, 1, 2, 12, 3, 14, 2, 6, 3, 1, 1, 2, 8, 1]
UA = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
      "GrowthOS-Android/3.2.1 (Pixel 8; Android 14)", "curl/8.5.0"]
LOCALES = ["en-US", "de-DE", "fr-FR", "pt-BR", "ja-JP", "hi-IN", "es-ES", "pl-PL", "ko-KR", "zh-CN"]
LIBS = [{"name": "growthos-js", "version": "2.4.1"}, {"name": "growthos-js", "version": "2.5.0"},
        {"name": "growthos-python", "version": "1.8.0"}, {"name": "growthos-ios", "version": "3.0.2"}]
PAGES = ["/", "/pricing", "/blog/growth-loops", "/docs/api", "/signup", "/app/dashboard",
         "/app/settings", "/café/menü", "/产品", "/checkout?step=2"]
LOREM = ("GrowthOS makes growth loops measurable — référence, 日本語のテキスト, emoji 🎉, "
         "and a long tail of text that keeps going to test wide columns. ")


def slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_.lower() if ch.isalnum()) or "user"


def person(rng: random.Random, i: int) -> tuple[str, str | None]:
    """A display name and a unique email (or None: ~3% of contacts are anonymous)."""
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if rng.random() < 0.03:
        return name, None
    return name, f"{slug(name)}.{i}@{rng.choice(DOMAINS)}"


def traits(rng: random.Random, name: str, now_ms: int) -> dict[str, Any]:
    """Free-form traits whose keys vary from contact to contact."""
    t: dict[str, Any] = {"name": name}
    r = rng.random
    if r() < 0.7:
        t["plan"] = rng.choice(PLANS)
    if r() < 0.5:
        t["company"] = rng.choice(LAST) + rng.choice([" GmbH", " Inc.", " Ltda", " 株式会社", ""])
    if r() < 0.6:
        t["country"] = rng.choice(COUNTRIES)
    if r() < 0.3:
        t["lifetime_value"] = round(r() * 5000, 2)
    if r() < 0.3:
        t["seats"] = rng.randint(1, 500)
    if r() < 0.2:
        t["is_beta"] = r() < 0.5
    if r() < 0.15:
        t["address"] = {"city": rng.choice(["München", "São Paulo", "東京", "Lagos", "Kraków"]),
                        "postcode": None if r() < 0.3 else str(rng.randint(10000, 99999)),
                        "geo": {"lat": round(r() * 180 - 90, 5), "lon": round(r() * 360 - 180, 5)}}
    if r() < 0.1:
        t["preferences"] = {"newsletter": r() < 0.5,
                            "channels": rng.sample(["email", "sms", "push", "in_app"], 2)}
    if r() < 0.05:
        t["bio"] = LOREM * rng.randint(5, 40)
    if r() < 0.1:
        t["last_login"] = iso_ms(now_ms - rng.randint(0, 90) * 86_400_000)
    if r() < 0.05:
        t["referrer_code"] = None
    if r() < 0.05:
        t[f"custom_{rng.randint(1, 30)}"] = rng.choice(["α", 42, 3.14, True, None, ["x", "y"]])
    return t


def tags(rng: random.Random) -> list[str]:
    return rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2, 3)))


EVENT_POOL = [name for name, w in zip(EVENTS, EVENT_WEIGHTS) for _ in range(w)]
IPS = [f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(range(11, 223, 3), range(0, 255, 4),
                                                  range(255, 0, -4), range(1, 254, 4))]


def _props(rng: random.Random, name: str) -> dict[str, Any]:
    r = rng.random
    if name == "$page_view":
        return {"path": PAGES[int(r() * 10)], "duration_ms": int(r() * 90_000) + 50}
    if name == "purchase":
        p: dict[str, Any] = {"amount": round(r() * 300, 2),
                             "currency": ("USD", "EUR", "BRL", "JPY")[int(r() * 4)],
                             "items": [{"sku": f"SKU-{int(r() * 999) + 1}",
                                        "qty": int(r() * 3) + 1}
                                       for _ in range(int(r() * 3) + 1)]}
        if r() < 0.2:
            p["coupon"] = None
        return p
    if name == "feature_used":
        return {"feature": ("export", "segments", "campaigns", "ai_assist", "ñandú")[int(r() * 5)],
                "count": int(r() * 20) + 1}
    if name == "search":
        return {"query": ("pricing", "how to export", "référence", "検索", "")[int(r() * 5)],
                "results": int(r() * 50)}
    if name.startswith("email."):
        return {"campaign": ("welcome", "digest", "promo")[int(r() * 3)],
                "message_id": f"m{int(r() * 10**6)}"}
    if name == "$survey_responded":
        return {"score": int(r() * 11)}
    if r() < 0.3:
        return {}
    return {"source": ("web", "ios", "android", "api")[int(r() * 4)], "flag": r() < 0.5}


def event(rng: random.Random, eid: str, contact: dict[str, Any], ts: int,
          project_id: str) -> tuple[str, dict[str, Any]]:
    """One event of the stream for `contact` at epoch ms `ts` (hot path: plain indexing)."""
    r = rng.random
    name = EVENT_POOL[int(r() * len(EVENT_POOL))]
    etype = ("page" if name == "$page_view" else "identify" if name == "$identify"
             else "group" if r() < 0.01 else "track")
    page = None
    if etype == "page" or r() < 0.3:
        path = PAGES[int(r() * 10)]
        page = {"url": "https://app.example.com" + path, "title": path.strip("/") or "Home",
                "referrer": None if r() < 0.5 else "https://www.google.com/"}
    campaign = None
    if r() < 0.15:
        campaign = {"source": ("newsletter", "twitter", "google")[int(r() * 3)],
                    "medium": ("email", "social", "cpc")[int(r() * 3)],
                    "name": ("spring_launch", "black_friday", "onboarding")[int(r() * 3)]}
    ctx = {"ip": IPS[int(r() * len(IPS))], "user_agent": UA[int(r() * 5)],
           "locale": LOCALES[int(r() * 10)], "page": page, "library": LIBS[int(r() * 4)],
           "campaign": campaign}
    ev = {
        "id": eid,
        "type": etype,
        "contact_id": contact["id"],
        "user_id": contact["external_id"],
        "anonymous_id": None if r() < 0.6 else f"anon_{rng.getrandbits(48):012x}",
        "event": name,
        "properties": _props(rng, name),
        "context": ctx,
        "timestamp": iso_ms(ts),
        "received_at": iso_ms(ts + int(r() * 4000) + 5),
        "message_id": f"msg_{rng.getrandbits(64):016x}",
        "tenant_id": project_id,
    }
    return name, ev
