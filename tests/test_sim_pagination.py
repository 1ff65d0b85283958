"""Keyset pagination of the local GrowthOS server, on real HTTP.

The property tests walk a list page by page with random page sizes while random bursts of
activity (POST /_sim/mutate) and API writes (PATCH / DELETE /contacts/{id}) land between the page
requests, and check the promise of the cursors: a walk never returns a record twice, and returns
every record that existed before the walk and was neither deleted nor changed during it.
The other tests check the page envelope, limits, cursor errors and the documented filters.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import control, truth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthos_sim import DEFAULT_KEY, SimServer

Row = dict[str, Any]

# Bounded and derandomized: the same examples on every run, in CI too.
WALKS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WALK_SIZES = {"seed": 23, "contacts": 150, "events": 600}


@pytest.fixture(scope="module")
def walk_sim() -> Iterator[SimServer]:
    """A private server the walks mutate; every example starts from a reset world."""
    with SimServer(**WALK_SIZES) as s:
        yield s


@pytest.fixture(scope="module")
def client(walk_sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=walk_sim.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as c:
        yield c


# ---- strategies: what happens between two page requests -------------------------------------

counts = st.integers(min_value=0, max_value=6)
bursts = st.fixed_dictionaries(
    {},
    optional={
        "advance": st.sampled_from(["0s", "1m", "2h"]),
        "contacts": st.fixed_dictionaries({}, optional={
            "create": counts, "update": counts, "delete": st.integers(0, 4),
            "merge": st.integers(0, 1)}),
        "events": st.fixed_dictionaries({"create": st.integers(0, 60)}),
        "survey_responses": st.fixed_dictionaries({"create": counts}),
    },
).filter(lambda b: set(b) - {"advance"})  # a bare advance would apply a whole default day
api_writes = st.tuples(st.sampled_from(["patch", "delete"]), st.integers(0, 10_000))
between = st.one_of(st.none(), bursts.map(lambda b: ("mutate", b)),
                    api_writes.map(lambda w: ("api", w)))
# (page size, what happens after that page); the list is used cyclically through the walk.
steps = st.lists(st.tuples(st.integers(1, 100), between), min_size=1, max_size=12)


def _reset(s: SimServer) -> None:
    r = control(s, "POST", "reset")
    assert r.status_code == 200, r.text


def _apply(s: SimServer, c: httpx.Client, action: Any, contact_ids: list[str]) -> None:
    if action is None:
        return
    kind, what = action
    if kind == "mutate":
        r = control(s, "POST", "mutate", json=what)
        assert r.status_code == 200, r.text
        return
    method, k = what
    cid = contact_ids[k % len(contact_ids)]
    if method == "patch":
        r = c.patch(f"/contacts/{cid}", json={"traits": {"walked": k}, "tags": ["walked"]})
        assert r.status_code in (200, 404), r.text  # 404: deleted earlier in the walk
    else:
        r = c.delete(f"/contacts/{cid}")
        assert r.status_code in (204, 404), r.text


# Changes land between the first pages only, so that a walk with small pages cannot chase newly
# created records forever; the rest of the walk runs undisturbed to the end.
MAX_DISTURBED_PAGES = 40


def walk(c: httpx.Client, path: str, params: dict[str, Any], plan: list[Any],
         after_page: Callable[[Any], None]) -> list[Row]:
    """Walk a list to its end with the plan's page sizes, running its actions between pages."""
    rows: list[Row] = []
    cursor = None
    for n in range(3_000):
        limit, action = plan[n % len(plan)]
        if n >= MAX_DISTURBED_PAGES:
            action = None
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = c.get(path, params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= limit
        assert page["has_more"] is (page["next_cursor"] is not None)
        rows.extend(page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return rows
        cursor = page["next_cursor"]
        after_page(action)
    raise AssertionError("the walk never ended")


def check_walk(seen: list[Row], before: dict[str, Row], after_all: dict[str, Row],
               after_live: dict[str, Row], key: Callable[[Row], Any], descending: bool,
               id_field: str = "id") -> None:
    ids = [r[id_field] for r in seen]
    assert len(ids) == len(set(ids)), "a record was returned twice"
    # Every record that existed before the walk and is live and unchanged after it was returned,
    # exactly as the server holds it.
    by_id = {r[id_field]: r for r in seen}
    unchanged = [rid for rid, row in before.items() if after_live.get(rid) == row]
    missing = [rid for rid in unchanged if rid not in by_id]
    assert not missing, f"{len(missing)} unchanged records skipped, e.g. {missing[:3]}"
    for rid in unchanged:
        assert by_id[rid] == before[rid]
    # Nothing invented: every returned record exists (possibly deleted since).
    assert set(ids) <= set(after_all)
    # Keyset order holds across page boundaries.
    keys = [key(r) for r in seen]
    assert keys == sorted(keys, reverse=descending)
    assert len(set(keys)) == len(keys)


def _by_id(rows: list[Row], id_field: str = "id", drop: str | None = None) -> dict[str, Row]:
    out = {}
    for r in rows:
        if drop is not None:
            r = {k: v for k, v in r.items() if k != drop}
        out[r[id_field]] = r
    return out


# ---- property tests -------------------------------------------------------------------------

@WALKS
@given(plan=steps, tag=st.sampled_from([None, None, "vip", "beta"]))
def test_contacts_walk_under_concurrent_changes(walk_sim: SimServer, client: httpx.Client,
                                                plan: list[Any], tag: str | None) -> None:
    s = walk_sim
    _reset(s)
    before = {k: v for k, v in _by_id(truth(s, "contacts")).items()
              if tag is None or tag in v["tags"]}
    ids = sorted(_by_id(truth(s, "contacts")))
    seen = walk(client, "/contacts", {"tag": tag} if tag else {}, plan,
                lambda a: _apply(s, client, a, ids))
    after_all = _by_id(truth(s, "contacts", include_deleted=True))
    after_live = _by_id(truth(s, "contacts"))
    check_walk(seen, before, after_all, after_live, lambda r: (r["created_at"], r["id"]), False)
    if tag is not None:
        assert all(tag in r["tags"] for r in seen if after_live.get(r["id"]) == r)


@WALKS
@given(plan=steps, name=st.sampled_from([None, None, "$page_view", "login"]))
def test_event_stream_walk_under_concurrent_changes(walk_sim: SimServer, client: httpx.Client,
                                                    plan: list[Any], name: str | None) -> None:
    s = walk_sim
    _reset(s)
    before = {k: v for k, v in _by_id(truth(s, "events")).items()
              if name is None or v["event"] == name}
    ids = sorted(_by_id(truth(s, "contacts")))
    seen = walk(client, "/analytics/events", {"event": name} if name else {}, plan,
                lambda a: _apply(s, client, a, ids))
    after = _by_id(truth(s, "events"))  # events are never deleted
    check_walk(seen, before, after, after, lambda r: (r["timestamp"], r["id"]), True)
    assert name is None or all(r["event"] == name for r in seen)


@WALKS
@given(plan=steps, which=st.integers(0, 4))
def test_survey_responses_walk_under_concurrent_changes(
        walk_sim: SimServer, client: httpx.Client, plan: list[Any], which: int) -> None:
    s = walk_sim
    _reset(s)
    survey = truth(s, "surveys")[which]["id"]

    def responses() -> dict[str, Row]:
        return _by_id([r for r in truth(s, "survey_responses") if r["survey_id"] == survey],
                      drop="survey_id")

    before = responses()
    assert before
    ids = sorted(_by_id(truth(s, "contacts")))
    seen = walk(client, f"/surveys/{survey}/responses", {}, plan,
                lambda a: _apply(s, client, a, ids))
    after = responses()  # responses are never deleted
    check_walk(seen, before, after, after, lambda r: (r["responded_at"], r["id"]), False)


# ---- every list, walked without changes, is exactly its truth -----------------------------

def _walk_plain(c: httpx.Client, path: str, params: dict[str, Any] | None = None,
                limit: int = 7) -> tuple[list[Row], list[Row]]:
    """(rows, pages) of an undisturbed walk; checks the envelope of every page."""
    rows: list[Row] = []
    pages: list[Row] = []
    cursor = None
    while True:
        q = {**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = c.get(path, params=q)
        assert r.status_code == 200, (path, r.text)
        page = r.json()
        assert page["request_id"].startswith("req_")
        assert page["has_more"] is (page["next_cursor"] is not None)
        pages.append(page)
        rows.extend(page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        # Nothing changes during this walk: every page but the last is full...
        assert len(page["data"]) == limit
        cursor = page["next_cursor"]
    # ...and the last page is not an empty leftover.
    assert pages[-1]["data"] or len(pages) == 1
    return rows, pages


def test_every_list_walks_to_its_truth(sim: SimServer, api: Any) -> None:
    c = api(sim)

    def same(path: str, expected: list[Row], params: dict[str, Any] | None = None,
             limit: int = 7) -> list[Row]:
        rows, _ = _walk_plain(c, path, params, limit)
        assert rows == expected, path
        return rows

    def strip(rows: list[Row], field: str) -> list[Row]:
        return [{k: v for k, v in r.items() if k != field} for r in rows]

    same("/contacts", truth(sim, "contacts"), limit=23)
    same("/segments", truth(sim, "segments"))
    same("/campaigns", truth(sim, "campaigns"))
    same("/surveys", truth(sim, "surveys"), limit=2)
    same("/referrals/programs", truth(sim, "referral_programs"), limit=1)
    same("/webhooks/endpoints", truth(sim, "webhook_endpoints"), limit=3)
    same("/settings/keys", truth(sim, "api_keys"), limit=1)
    same("/analytics/events", truth(sim, "events"), limit=100)

    members = truth(sim, "segment_memberships")
    for seg in truth(sim, "segments")[:3]:
        mine = [m for m in members if m["segment_id"] == seg["id"]]
        same(f"/segments/{seg['id']}/contacts", strip(mine, "segment_id"))
        assert seg["contact_count"] == len(mine)
    responses = truth(sim, "survey_responses")
    for srv in truth(sim, "surveys"):
        same(f"/surveys/{srv['id']}/responses",
             strip([r for r in responses if r["survey_id"] == srv["id"]], "survey_id"))
    entries = truth(sim, "waitlist_entries")
    for wl in truth(sim, "waitlists"):
        mine = strip([e for e in entries if e["waitlist_id"] == wl["id"]], "waitlist_id")
        rows, pages = _walk_plain(c, f"/waitlists/{wl['id']}/entries")
        assert rows == mine
        assert all(p["total_entries"] == len(mine) == wl["total_entries"] for p in pages)
    deliveries = truth(sim, "webhook_deliveries")
    for hook in truth(sim, "webhook_endpoints"):
        # Logs are newest first; truth lists rows oldest first.
        same(f"/webhooks/endpoints/{hook['id']}/logs",
             strip([d for d in deliveries if d["endpoint_id"] == hook["id"]][::-1],
                   "endpoint_id"), limit=50)
    links = truth(sim, "referral_links")
    conversions = truth(sim, "referral_conversions")
    board = truth(sim, "referral_leaderboard")
    for prog in truth(sim, "referral_programs"):
        mine = [lk for lk in links if lk["program_id"] == prog["id"]]
        same(f"/referrals/programs/{prog['id']}/links", mine, limit=10)
        rows, pages = _walk_plain(c, "/referrals/leaderboard", {"program_id": prog["id"]}, 5)
        assert rows == strip([b for b in board if b["program_id"] == prog["id"]], "program_id")
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert all(p["program_id"] == prog["id"] for p in pages)
    for link in links[:10]:
        same(f"/referrals/links/{link['code']}/conversions",
             [cv for cv in conversions if cv["link_code"] == link["code"]], limit=1)
    events = truth(sim, "events")
    for contact in truth(sim, "contacts")[:5]:
        same(f"/contacts/{contact['id']}/events",
             [e for e in events if e["contact_id"] == contact["id"]], limit=3)
        seg_ids = {m["segment_id"] for m in members if m["contact_id"] == contact["id"]}
        same(f"/contacts/{contact['id']}/segments",
             [sg for sg in truth(sim, "segments") if sg["id"] in seg_ids], limit=1)


def test_empty_list_is_one_final_page(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500)
    c = api(s)
    r = c.post("/segments", json={"name": "empty", "rules": {"operator": "AND",
                                                              "conditions": []}})
    assert r.status_code == 201
    page = c.get(f"/segments/{r.json()['id']}/contacts").json()
    assert page["data"] == [] and page["has_more"] is False and page["next_cursor"] is None


# ---- limits and cursors --------------------------------------------------------------------

def test_limit_bounds_and_default_page_size(sim: SimServer, api: Any) -> None:
    c = api(sim)
    for bad in ("0", "101", "-1", "abc", "2.5"):
        r = c.get("/contacts", params={"limit": bad})
        assert r.status_code == 400, bad
        body = r.json()
        assert body["error"]["code"] == "invalid_parameter"
        assert body["error"]["details"][0]["field"] == "limit"
        assert body["request_id"].startswith("req_")
    assert c.get("/analytics/events", params={"limit": 101}).status_code == 400
    assert c.get("/analytics/events", params={"limit": 0}).status_code == 400
    assert len(c.get("/contacts", params={"limit": 1}).json()["data"]) == 1
    assert len(c.get("/contacts", params={"limit": 100}).json()["data"]) == 100
    assert len(c.get("/analytics/events", params={"limit": 100}).json()["data"]) == 100
    default = c.get("/contacts").json()
    assert len(default["data"]) == 50 and default["has_more"] is True
    assert len(c.get("/analytics/events").json()["data"]) == 50


def _cursor(c: httpx.Client, path: str, params: dict[str, Any] | None = None) -> str:
    page = c.get(path, params={**(params or {}), "limit": 1}).json()
    assert page["next_cursor"]
    return str(page["next_cursor"])


def _invalid_cursor(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_cursor"
    assert r.json()["request_id"].startswith("req_")


def test_cursor_of_one_list_is_rejected_by_another(sim: SimServer, api: Any) -> None:
    c = api(sim)
    contacts_cursor = _cursor(c, "/contacts")
    _invalid_cursor(c.get("/segments", params={"cursor": contacts_cursor}))
    _invalid_cursor(c.get("/analytics/events", params={"cursor": contacts_cursor}))
    events_cursor = _cursor(c, "/analytics/events")
    _invalid_cursor(c.get("/contacts", params={"cursor": events_cursor}))
    # Child lists: a cursor belongs to one parent.
    cid = truth(sim, "contacts")[0]["id"]
    _invalid_cursor(c.get(f"/contacts/{cid}/events", params={"cursor": events_cursor}))
    s1, s2 = (s["id"] for s in truth(sim, "surveys")[:2])
    _invalid_cursor(c.get(f"/surveys/{s2}/responses",
                          params={"cursor": _cursor(c, f"/surveys/{s1}/responses")}))
    # A cursor still works on its own list.
    assert c.get("/contacts", params={"cursor": contacts_cursor}).status_code == 200


def test_tampered_or_foreign_cursor_is_rejected(sim: SimServer, api: Any, make_sim: Any) -> None:
    c = api(sim)
    cursor = _cursor(c, "/contacts")
    body, sig = cursor.rsplit(".", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    _invalid_cursor(c.get("/contacts", params={"cursor": f"{flipped}.{sig}"}))
    _invalid_cursor(c.get("/contacts", params={"cursor": f"{body}.{'0' * len(sig)}"}))
    # A hand-made cursor pointing elsewhere, with the old signature.
    forged = base64.urlsafe_b64encode(b'{"s":"contacts","k":["2000-01-01","con_"],"t":1}')
    _invalid_cursor(c.get("/contacts", params={"cursor": f"{forged.decode()}.{sig}"}))
    for junk in ("garbage", "x.y", ".", "%%%", "a" * 300):
        _invalid_cursor(c.get("/contacts", params={"cursor": junk}))
    # Cursors are signed per server: another server with the same data refuses this one.
    other = make_sim()
    _invalid_cursor(api(other).get("/contacts", params={"cursor": cursor}))


# ---- filters -------------------------------------------------------------------------------

def _all(c: httpx.Client, path: str, params: dict[str, Any] | None = None) -> list[Row]:
    return _walk_plain(c, path, params, limit=100)[0]


def test_contacts_created_after_and_before_are_exclusive(sim: SimServer, api: Any) -> None:
    c = api(sim)
    contacts = truth(sim, "contacts")
    lo, hi = contacts[40], contacts[200]
    t_lo, t_hi = lo["created_at"], hi["created_at"]
    after = _all(c, "/contacts", {"created_after": t_lo})
    assert after == [x for x in contacts if x["created_at"] > t_lo]
    assert lo not in after and contacts[41] in after
    before = _all(c, "/contacts", {"created_before": t_hi})
    assert before == [x for x in contacts if x["created_at"] < t_hi]
    assert hi not in before and contacts[199] in before
    both = _all(c, "/contacts", {"created_after": t_lo, "created_before": t_hi})
    assert both == [x for x in contacts if t_lo < x["created_at"] < t_hi]
    # Any ISO 8601 offset names the same instant.
    shifted = t_lo.replace("Z", "+00:00")
    assert _all(c, "/contacts", {"created_after": shifted}) == after
    # An empty window, and a window beyond the data.
    assert _all(c, "/contacts", {"created_after": t_hi, "created_before": t_lo}) == []
    assert _all(c, "/contacts", {"created_after": "2030-01-01T00:00:00Z"}) == []
    # Bounds far outside the data, even beyond what four-digit years can write, still filter.
    assert _all(c, "/contacts", {"created_after": "0999-01-01T00:00:00Z"}) == contacts
    assert _all(c, "/contacts", {"created_before": "0001-01-01T00:00:00+05:00"}) == []
    assert _all(c, "/contacts", {"created_before": "9999-12-31T23:59:59-05:00"}) == contacts
    r = c.get("/contacts", params={"created_after": "last tuesday"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"


def test_contacts_segment_and_tag_filters(sim: SimServer, api: Any) -> None:
    c = api(sim)
    contacts = truth(sim, "contacts")
    members = truth(sim, "segment_memberships")
    for seg in truth(sim, "segments")[:4]:
        ids = {m["contact_id"] for m in members if m["segment_id"] == seg["id"]}
        got = _all(c, "/contacts", {"segment_id": seg["id"]})
        assert got == [x for x in contacts if x["id"] in ids]
        assert len(got) == seg["contact_count"] > 0
    r = c.get("/contacts", params={"segment_id": "seg_doesnotexist0000"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for tag in ("vip", "référé", "早期"):
        got = _all(c, "/contacts", {"tag": tag})
        assert got == [x for x in contacts if tag in x["tags"]] and got
    assert _all(c, "/contacts", {"tag": "no-such-tag"}) == []
    seg = truth(sim, "segments")[0]["id"]
    got = _all(c, "/contacts", {"tag": "vip", "segment_id": seg})
    ids = {m["contact_id"] for m in members if m["segment_id"] == seg}
    assert got == [x for x in contacts if "vip" in x["tags"] and x["id"] in ids]


def test_campaign_type_and_status_filters(sim: SimServer, api: Any) -> None:
    c = api(sim)
    campaigns = truth(sim, "campaigns")
    seen_any = 0
    for kind in ("lifecycle", "broadcast"):
        got = _all(c, "/campaigns", {"type": kind})
        assert got == [x for x in campaigns if x["type"] == kind]
        seen_any += len(got)
        for status in ("draft", "active", "paused", "completed", "archived", "scheduled"):
            got = _all(c, "/campaigns", {"type": kind, "status": status})
            assert got == [x for x in campaigns if x["type"] == kind and x["status"] == status]
    assert seen_any == len(campaigns)
    got = _all(c, "/campaigns", {"status": "active"})
    assert got == [x for x in campaigns if x["status"] == "active"] and got
    for bad in ({"type": "sms"}, {"status": "running"}):
        r = c.get("/campaigns", params=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"


def test_event_stream_filters(sim: SimServer, api: Any) -> None:
    c = api(sim)
    events = truth(sim, "events")  # newest first
    assert _all(c, "/analytics/events", {"event": "login"}) == \
        [e for e in events if e["event"] == "login"]
    assert _all(c, "/analytics/events", {"event": "$page_view"}) == \
        [e for e in events if e["event"] == "$page_view"]
    assert _all(c, "/analytics/events", {"event": "no.such.event"}) == []
    cid = events[5]["contact_id"]
    mine = [e for e in events if e["contact_id"] == cid]
    assert _all(c, "/analytics/events", {"contact_id": cid}) == mine and mine
    # `from` inclusive, `to` exclusive, on `timestamp`.
    t_from, t_to = events[900]["timestamp"], events[100]["timestamp"]
    got = _all(c, "/analytics/events", {"from": t_from})
    assert got == [e for e in events if e["timestamp"] >= t_from]
    assert events[900] in got
    got = _all(c, "/analytics/events", {"to": t_to})
    assert got == [e for e in events if e["timestamp"] < t_to]
    assert events[100] not in got
    got = _all(c, "/analytics/events", {"from": t_from, "to": t_to})
    assert got == [e for e in events if t_from <= e["timestamp"] < t_to]
    assert events[900] in got and events[100] not in got
    got = _all(c, "/analytics/events", {"from": t_from, "to": t_from})
    assert got == []
    # Every filter at once.
    name = events[500]["event"]
    got = _all(c, "/analytics/events", {"from": t_from, "to": t_to, "event": name,
                                        "contact_id": events[500]["contact_id"]})
    assert got == [e for e in events if t_from <= e["timestamp"] < t_to and e["event"] == name
                   and e["contact_id"] == events[500]["contact_id"]]
    assert events[500] in got
    r = c.get("/analytics/events", params={"from": "not-a-time"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"


def test_unknown_query_parameters_are_ignored(sim: SimServer, api: Any) -> None:
    c = api(sim)
    for path, params in (("/contacts", {}), ("/analytics/events", {"event": "login"}),
                         ("/campaigns", {"type": "broadcast"}), ("/segments", {})):
        plain = _all(c, path, params)
        extra = _all(c, path, {**params, "include_archived": "true", "sort": "-name",
                               "updated_after": "2026-01-01T00:00:00Z", "x-future": "1"})
        assert extra == plain, path
    r = c.get(f"/contacts/{truth(sim, 'contacts')[0]['id']}", params={"expand": "everything"})
    assert r.status_code == 200
