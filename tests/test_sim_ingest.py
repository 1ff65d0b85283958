"""The local server's Ingest API on real HTTP: write keys, the processing delay, late events,
message_id dedup, batch limits and per-item results, identity stitching, rate limits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import control, truth

from growthos_sim import DEFAULT_KEY, DEFAULT_WRITE_KEY, SimServer

Row = dict[str, Any]
SIZE = {"contacts": 80, "events": 800}
WK = {"Authorization": f"Bearer {DEFAULT_WRITE_KEY}"}


@pytest.fixture
def ingest() -> Any:
    clients: list[httpx.Client] = []

    def factory(s: SimServer, headers: dict[str, str] | None = None) -> httpx.Client:
        c = httpx.Client(base_url=s.base_url, headers=WK if headers is None else headers,
                         timeout=30)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()


def error(r: httpx.Response, status: int, code: str) -> Row:
    assert r.status_code == status, r.text
    body: Row = r.json()
    assert body["error"]["code"] == code and body["error"]["message"], body
    assert body["request_id"].startswith("req_")
    return body


def accepted(r: httpx.Response) -> None:
    assert r.status_code == 202, r.text
    assert r.json()["success"] is True and r.json()["request_id"].startswith("req_")


def advance(s: SimServer, by: str) -> Row:
    r = control(s, "POST", "mutate", json={"advance": by, "activity": False})
    assert r.status_code == 200, r.text
    out: Row = r.json()
    return out


def events_of(s: SimServer, **match: Any) -> list[Row]:
    return [e for e in truth(s, "events") if all(e.get(k) == v for k, v in match.items())]


# ---- keys ---------------------------------------------------------------------------------

def test_write_keys_write_and_secret_keys_do_not(make_sim, ingest, api) -> None:
    s = make_sim(**SIZE, processing_delay_ms=0, write_keys=[DEFAULT_WRITE_KEY, "gos_wk_two"])
    body = {"user_id": "usr_k", "event": "key_check"}
    accepted(ingest(s).post("/track", json=body))
    accepted(ingest(s, {"Authorization": "Bearer gos_wk_two"}).post("/track", json=body))
    accepted(ingest(s, {}).post("/track", params={"writeKey": DEFAULT_WRITE_KEY}, json=body))
    for headers, what in (({}, "missing write key"),
                          ({"Authorization": "Bearer gos_wk_nope"}, "invalid write key"),
                          ({"Authorization": f"Bearer {DEFAULT_KEY}"}, "secret keys")):
        r = ingest(s, headers).post("/track", json=body)
        assert what in error(r, 401, "unauthenticated")["error"]["message"]
    assert len(events_of(s, event="key_check")) == 3
    # ...and a write key cannot read the Management API.
    r = api(s, key=DEFAULT_WRITE_KEY).get("/contacts")
    assert r.status_code == 401 and "write keys" in r.json()["error"]["message"]
    with pytest.raises(ValueError, match="gos_wk_"):
        SimServer(**SIZE, write_keys=["gos_sk_not_a_write_key"])


# ---- processing delay and late events -----------------------------------------------------

def test_accepted_events_are_visible_only_after_the_delay(make_sim, ingest, api) -> None:
    """Default delay 5 s of server time: not in the stream, counts, contact events or truth
    before; all of them after. Past timestamps of any age land in their own days."""
    s = make_sim(**SIZE)
    c = ingest(s)
    now = control(s, "GET", "info").json()["now"]
    ages = {"3s": "2026-05-31T23:59:57.000Z", "1h": "2026-05-31T23:00:00.000Z",
            "5d": "2026-05-27T00:00:00.000Z", "60d": "2026-04-02T00:00:00.000Z"}
    assert now == "2026-06-01T00:00:00.000Z"
    for age, ts in ages.items():
        accepted(c.post("/track", json={"user_id": "usr_late", "event": f"late_{age}",
                                        "timestamp": ts}))
    accepted(c.post("/track", json={"user_id": "usr_late", "event": "on_time"}))
    before = truth(s, "events")
    assert not [e for e in before if e["user_id"] == "usr_late"]
    assert control(s, "GET", "info").json()["pending"] == 5
    advance(s, "4s")
    assert not events_of(s, user_id="usr_late")
    advance(s, "1s")
    mine = events_of(s, user_id="usr_late")
    assert Counter(e["event"] for e in mine) == Counter([f"late_{a}" for a in ages] + ["on_time"])
    for e in mine:
        assert e["received_at"] == now
        assert e["timestamp"] == ages.get(e["event"][5:], now)
    # Every view agrees: the stream, the contact's events and the daily counts.
    m = api(s)
    stream = m.get("/analytics/events", params={"limit": 100, "event": "late_60d"}).json()
    assert [e["id"] for e in stream["data"]] == [e["id"] for e in mine if e["event"] == "late_60d"]
    cid = mine[0]["contact_id"]
    assert {e["contact_id"] for e in mine} == {cid}
    contact_events = m.get(f"/contacts/{cid}/events", params={"limit": 100}).json()["data"]
    assert [e["id"] for e in contact_events] == [e["id"] for e in mine]
    q = m.post("/analytics/query", json={"type": "event_count", "from": "2026-04-02",
                                         "to": "2026-04-02", "group_by": "event"}).json()
    assert q["data"][0]["groups"].get("late_60d") == 1
    daily = {(d["date"], d["event"]): d["count"] for d in truth(s, "daily_event_counts")}
    assert daily[("2026-05-27", "late_5d")] == 1


def test_mutate_via_ingest_waits_for_the_delay(make_sim) -> None:
    """`via_ingest`: mutate's events (late ones too) take the ingest path: the last seconds of
    the burst are still pending when mutate returns, and the next advance processes them."""
    s = make_sim(**SIZE)
    n = len(truth(s, "events"))
    done = control(s, "POST", "mutate", json={
        "advance": "20s", "events": {"create": 40, "late": {"1d": 10}, "via_ingest": True}}).json()
    pending = done["pending"]
    assert 0 < pending < 50
    assert len(truth(s, "events")) == n + 50 - pending
    advance(s, "5s")
    assert len(truth(s, "events")) == n + 50
    assert control(s, "GET", "info").json()["pending"] == 0


# ---- idempotency --------------------------------------------------------------------------

def test_duplicate_message_ids_are_dropped_for_24_hours(make_sim, ingest) -> None:
    s = make_sim(**SIZE, processing_delay_ms=0)
    c = ingest(s)
    body = {"user_id": "usr_dup", "event": "paid", "message_id": "msg_once"}
    for _ in range(3):
        accepted(c.post("/track", json=body))
    r = c.post("/batch", json={"batch": [{"type": "track", **body}, {"type": "track", **body}]})
    assert r.status_code == 202 and all(i["status"] == 202 for i in r.json()["items"])
    assert len(events_of(s, event="paid")) == 1
    advance(s, "23h")
    accepted(c.post("/track", json=body))
    assert len(events_of(s, event="paid")) == 1
    advance(s, "1h")  # 24 h after the first receipt: a new message
    accepted(c.post("/track", json=body))
    assert len(events_of(s, event="paid")) == 2
    assert {e["message_id"] for e in events_of(s, event="paid")} == {"msg_once"}


# ---- validation and limits ----------------------------------------------------------------

def test_documented_errors(make_sim, ingest) -> None:
    s = make_sim(**SIZE, processing_delay_ms=0)
    c = ingest(s)
    n = len(truth(s, "events"))
    error(c.post("/track", content=b"{nope", headers={"Content-Type": "application/json"}),
          400, "bad_request")
    error(c.post("/track", content=b'{"user_id": "u", "event": "e"}',
                 headers={"Content-Type": "text/plain"}), 400, "bad_request")
    error(c.post("/track", json=[1]), 400, "bad_request")
    for body, field in (({"event": "e"}, "user_id"), ({"user_id": "u"}, "event"),
                        ({"user_id": "u", "event": "$custom"}, "event"),
                        ({"user_id": "u", "event": "x" * 257}, "event"),
                        ({"user_id": "u", "event": "e", "timestamp": "yesterday"}, "timestamp"),
                        ({"user_id": "u", "event": "e", "properties": {"k": "v" * 11000}},
                         "properties.k"),
                        ({"user_id": "u", "event": "e",
                          "properties": {str(i): i for i in range(257)}}, "properties")):
        r = c.post("/track", json=body)
        assert error(r, 422, "validation_error")["error"]["details"][0]["field"] == field, body
    error(c.post("/group", json={"user_id": "u"}), 422, "validation_error")
    error(c.post("/alias", json={"user_id": "u"}), 422, "validation_error")
    error(c.get("/decide"), 422, "validation_error")
    assert len(truth(s, "events")) == n  # nothing refused was stored
    accepted(c.post("/track", json={"user_id": "u", "event": "$page_view"}))  # reserved, listed
    assert len(truth(s, "events")) == n + 1


def test_batch_limits_and_per_item_results(make_sim, ingest) -> None:
    s = make_sim(**SIZE, processing_delay_ms=0)
    c = ingest(s)
    n = len(truth(s, "events"))
    items = [{"type": "identify", "user_id": "usr_b", "traits": {"plan": "pro"}},
             {"type": "track", "user_id": "usr_b", "event": "login"},
             {"type": "track", "user_id": "usr_b"},  # no event
             {"type": "page", "anonymous_id": "anon_b", "name": "Home"},
             {"type": "group", "user_id": "usr_b", "group_id": "acme"},
             {"type": "alias", "previous_id": "a", "user_id": "b"},  # not a batch type
             "not an object"]
    r = c.post("/batch", json={"batch": items})
    assert r.status_code == 202, r.text
    got = r.json()["items"]
    assert [(i["index"], i["status"], i["success"]) for i in got] == [
        (0, 202, True), (1, 202, True), (2, 422, False), (3, 202, True), (4, 202, True),
        (5, 422, False), (6, 422, False)]
    assert "event" in got[2]["error"] and "type" in got[5]["error"]
    new = truth(s, "events")[: len(truth(s, "events")) - n]
    assert Counter(e["event"] for e in new) == {"$identify": 1, "login": 1, "$page_view": 1,
                                                "$group": 1}
    assert Counter(e["type"] for e in new) == {"identify": 1, "track": 1, "page": 1, "group": 1}
    # 501 items: refused whole; over 500 KB: 413.
    one = {"type": "track", "user_id": "u", "event": "e"}
    error(c.post("/batch", json={"batch": [one] * 501}), 422, "validation_error")
    big = {"type": "track", "user_id": "u", "event": "e", "properties": {"p": "x" * 9000}}
    r = c.post("/batch", json={"batch": [big] * 60})
    assert "500 KB" in error(r, 413, "payload_too_large")["error"]["message"]
    accepted(c.post("/batch", json={"batch": [one] * 500}))
    assert len(truth(s, "events")) == n + 4 + 500


# ---- identity stitching -------------------------------------------------------------------

def test_identify_with_both_ids_stitches_the_anonymous_profile(make_sim, ingest, api) -> None:
    s = make_sim(**SIZE, processing_delay_ms=0)
    c = ingest(s)
    for i in range(3):
        accepted(c.post("/page", json={"anonymous_id": "anon_s", "name": f"p{i}",
                                       "timestamp": f"2026-05-2{i}T10:00:00Z"}))
    accepted(c.post("/identify", json={"user_id": "usr_s", "traits": {"email": "s@x.io"}}))
    anon = events_of(s, anonymous_id="anon_s")
    assert len(anon) == 3 and {e["user_id"] for e in anon} == {None}
    anon_contact = anon[0]["contact_id"]
    accepted(c.post("/identify", json={"user_id": "usr_s", "anonymous_id": "anon_s"}))
    everyone = events_of(s, user_id="usr_s")
    target = {e["contact_id"] for e in everyone}
    assert len(target) == 1 and anon_contact not in target
    assert len(everyone) == 3 + 2  # the pages moved, plus both $identify events
    (cid,) = target
    contact = api(s).get(f"/contacts/{cid}").json()
    assert contact["email"] == "s@x.io" and contact["external_id"] == "usr_s"
    assert api(s).get(f"/contacts/{anon_contact}").status_code == 404  # merged away
    walked = api(s).get(f"/contacts/{cid}/events", params={"limit": 100}).json()["data"]
    assert sorted(e["id"] for e in walked) == sorted(e["id"] for e in everyone)


def test_alias_moves_events_and_later_calls_follow(make_sim, ingest, api) -> None:
    """alias(previous_id=old user id, user_id=new): the old contact's events move to the new
    one (an existing contact with history), and later calls with the old id land there too."""
    s = make_sim(**SIZE, processing_delay_ms=0)
    c = ingest(s)
    counts = Counter(e["user_id"] for e in truth(s, "events") if e["user_id"])
    (old, n_old), (new, n_new) = counts.most_common(2)
    accepted(c.post("/alias", json={"previous_id": old, "user_id": new}))
    assert not events_of(s, user_id=old)
    moved = events_of(s, user_id=new)
    assert len(moved) == n_old + n_new and len({e["contact_id"] for e in moved}) == 1
    accepted(c.post("/track", json={"user_id": old, "event": "after_alias"}))
    (ev,) = events_of(s, event="after_alias")
    assert ev["user_id"] == new and ev["contact_id"] == moved[0]["contact_id"]


def test_merge_while_queued_is_followed(make_sim, ingest, api) -> None:
    """An event accepted for a contact that a Management API merge removes before processing
    is attributed to the surviving contact."""
    s = make_sim(**SIZE)
    c = ingest(s)
    counts = Counter(e["user_id"] for e in truth(s, "events") if e["user_id"])
    (u1, _), (u2, _) = counts.most_common(2)
    contacts = {x["external_id"]: x["id"] for x in truth(s, "contacts")}
    accepted(c.post("/track", json={"user_id": u2, "event": "queued"}))
    r = api(s).post(f"/contacts/{contacts[u1]}/merge", json={"source_contact_id": contacts[u2]})
    assert r.status_code == 200, r.text
    advance(s, "5s")
    (ev,) = events_of(s, event="queued")
    assert ev["contact_id"] == contacts[u1] and ev["user_id"] == u1


# ---- rate limits and the document ---------------------------------------------------------

def test_ingest_rate_limits_are_the_plans_ingest_column(make_sim, ingest, api) -> None:
    """Per write key: Free 100, Growth 500, Scale 1,000 req/s on the Ingest API, while the
    Management API keeps 10/50/100 on the same plan."""
    for plan, limit, management in (("free", 100, 10), ("growth", 500, 50),
                                    ("scale", 1000, 100)):
        s = make_sim(contacts=20, events=50, plan=plan)
        r = ingest(s).get("/decide", params={"user_id": "u"})
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == str(limit)
        assert api(s).get("/segments").headers["X-RateLimit-Limit"] == str(management)


def test_ingest_limiter_refuses_past_the_limit_within_one_second(monkeypatch) -> None:
    """The limiter itself (unit, with the clock pinned so the test does not depend on how fast
    this machine sends): the 101st call of a Free write key in one second gets Retry-After."""
    import growthos_sim.ratelimit as rl

    monkeypatch.setattr(rl.time, "time", lambda: 1_000_000.25)
    limiter = rl.RateLimiter("free", limits=rl.INGEST_PLANS)
    answers = [limiter.hit(DEFAULT_WRITE_KEY) for _ in range(101)]
    assert all(ok for ok, _ in answers[:100]) and not answers[100][0]
    assert answers[100][1]["Retry-After"] == "1" and answers[99][1]["X-RateLimit-Remaining"] == "0"
    assert limiter.hit("gos_wk_other")[0]  # per key


def test_document_is_served_next_to_the_management_one(make_sim) -> None:
    import yaml

    s = make_sim(**SIZE)
    r = httpx.get(f"{s.url}/openapi/ingest.yaml", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
    doc = yaml.safe_load(r.content)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/identify", "/track", "/page", "/group", "/alias", "/batch",
                                 "/decide"}
    management = yaml.safe_load(httpx.get(f"{s.url}/openapi/management.yaml").content)
    assert not set(doc["paths"]) & set(management["paths"])
