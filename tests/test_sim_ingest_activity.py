"""`growthos_sim.activity.send_day`: a day of activity through the Ingest API (real HTTP), and
the server ends up holding exactly what it reports it sent."""

from __future__ import annotations

from collections import Counter

from conftest import control, truth

from growthos_sim import SimServer
from growthos_sim.activity import send_day
from growthos_sim.util import iso_ms, parse_duration_ms, parse_ms


def test_send_day_lands_exactly_what_it_reports(make_sim) -> None:
    s: SimServer = make_sim(contacts=60, events=600)
    before = {e["id"] for e in truth(s, "events")}
    sent = send_day(s.base_url, users=12, events=150, duplicates=4, stitch=2, seed=3)
    assert sent.requests >= 1 + 2 and sent.duplicates == 4
    assert control(s, "GET", "info").json()["pending"] > 0  # not processed yet: 5 s delay
    control(s, "POST", "mutate", json={"advance": "5s", "activity": False}).raise_for_status()
    new = [e for e in truth(s, "events") if e["id"] not in before]
    assert len(new) == sent.events
    assert Counter(e["message_id"] for e in new) == Counter(sent.message_ids)  # dups dropped
    now = parse_ms(sent.now)
    offline = Counter(e["timestamp"] for e in new if e["event"] == "offline_action")
    assert offline == Counter({iso_ms(now - parse_duration_ms(age)): n
                               for age, n in sent.late.items()})
    assert sorted(sent.late_message_ids) == sorted(
        e["message_id"] for e in new if e["event"] == "offline_action")
    assert {e["received_at"] for e in new} <= {iso_ms(now + k) for k in range(5000)}
    # Stitched and aliased visitors: no anonymous-only contact keeps events of a visitor who
    # was identified; every event of a day user carries its user's contact.
    users = set(sent.user_ids)
    by_user = {e["user_id"]: e["contact_id"] for e in new if e["user_id"] in users}
    for e in new:
        if e["user_id"] in users:
            assert e["contact_id"] == by_user[e["user_id"]]
    landing = [e for e in new if e["event"] == "landing"]
    assert len(landing) == sent.aliases and all(e["user_id"] in users for e in landing)


def test_send_day_settle_makes_everything_visible(make_sim) -> None:
    s: SimServer = make_sim(contacts=30, events=200, processing_delay_ms=2000)
    n = len(truth(s, "events"))
    sent = send_day(s.base_url, users=5, events=30, duplicates=1, stitch=1, settle=True)
    assert len(truth(s, "events")) == n + sent.events
    assert control(s, "GET", "info").json()["pending"] == 0
