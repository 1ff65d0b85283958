"""The local GrowthOS server's data: determinism, relationships, mess, writes, mutate and truth."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import control, truth

from growthos_sim import SimServer
from growthos_sim.seeding import build_world
from growthos_sim.truth import tables as truth_tables

Row = dict[str, Any]
TABLES = sorted(truth_tables(build_world(1, 5, 5)))


def by(rows: list[Row], field: str = "id") -> dict[Any, Row]:
    return {r[field]: r for r in rows}


def walk(c: httpx.Client, path: str, params: dict[str, Any] | None = None) -> list[Row]:
    rows: list[Row] = []
    cursor = None
    while True:
        q = {**(params or {}), "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = c.get(path, params=q).json()
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        cursor = page["next_cursor"]


def raw_truth(s: SimServer, table: str) -> bytes:
    r = control(s, "GET", f"truth/{table}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    return r.content


# ---- determinism ---------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_data(make_sim: Any, api: Any) -> None:
    a, b = make_sim(contacts=200, events=2000), make_sim(contacts=200, events=2000)
    # The same API use on both (it stamps keys' last_used_at with the server clock, not wall time).
    for s in (a, b):
        api(s).get("/contacts")
    for table in TABLES:
        assert raw_truth(a, table) == raw_truth(b, table), table
    # The API answers are identical too (apart from request ids).
    ca, cb = api(a), api(b)
    assert walk(ca, "/contacts") == walk(cb, "/contacts")
    overviews = [x.get("/analytics/overview").json() for x in (ca, cb)]
    assert [{k: v for k, v in o.items() if k != "request_id"} for o in overviews] == \
        [truth(a, "analytics_overview")[0]] * 2
    # Mutation bursts are seeded as well.
    burst = {"advance": "1d", "contacts": {"create": 5, "update": 5, "delete": 2},
             "events": {"create": 100}}
    ra, rb = (control(s, "POST", "mutate", json=burst).json() for s in (a, b))
    assert ra == rb
    for table in ("contacts", "events"):
        assert raw_truth(a, table) == raw_truth(b, table)


def test_different_seed_gives_different_data(make_sim: Any) -> None:
    a, b = make_sim(seed=1, contacts=50, events=500), make_sim(seed=2, contacts=50, events=500)
    ca, cb = truth(a, "contacts"), truth(b, "contacts")
    assert {c["id"] for c in ca}.isdisjoint({c["id"] for c in cb})
    assert [c["email"] for c in ca] != [c["email"] for c in cb]
    assert raw_truth(a, "events") != raw_truth(b, "events")


# ---- relationships and derived figures -----------------------------------------------------

def test_references_point_at_existing_records(sim: SimServer) -> None:
    live = by(truth(sim, "contacts"))
    every = by(truth(sim, "contacts", include_deleted=True))
    assert len(every) > len(live) >= 250  # some contacts are soft-deleted from the start
    events = truth(sim, "events")
    assert len(events) == 3000
    for e in events:
        contact = every[e["contact_id"]]
        assert e["user_id"] == contact["external_id"]
        assert contact["created_at"] <= e["timestamp"] <= contact.get("deleted_at", "9999")
    for contact in every.values():
        assert contact["created_at"] <= contact["updated_at"] <= contact.get("deleted_at", "9999")
        assert e["tenant_id"].startswith("proj_")
    for r in truth(sim, "survey_responses"):
        assert r["contact_id"] in live
    links = by(truth(sim, "referral_links"), "code")
    programs = by(truth(sim, "referral_programs"))
    for link in links.values():
        assert link["contact_id"] in live and link["program_id"] in programs
        assert link["url"].endswith(link["code"])
    conversions = truth(sim, "referral_conversions")
    assert conversions
    for cv in conversions:
        link = links[cv["link_code"]]
        assert cv["program_id"] == link["program_id"]
        assert cv["referrer_contact_id"] == link["contact_id"]
        assert cv["referred_contact_id"] in live
    waitlists = by(truth(sim, "waitlists"))
    for entry in truth(sim, "waitlist_entries"):
        assert entry["waitlist_id"] in waitlists
        contact = live[entry["contact_id"]]
        assert entry["email"] == (contact["email"] or entry["email"])
    segments = by(truth(sim, "segments"))
    for m in truth(sim, "segment_memberships"):
        assert m["segment_id"] in segments
        assert m["email"] == live[m["contact_id"]]["email"]
    campaigns = by(truth(sim, "campaigns"))
    for camp in campaigns.values():
        assert camp["segment_id"] is None or camp["segment_id"] in segments
    for st in truth(sim, "campaign_stats"):
        assert campaigns[st["campaign_id"]]["status"] == st["status"]
        assert st["stats"]["delivered"] + st["stats"]["bounced"] == st["stats"]["sent"]


def test_stats_agree_with_the_rows_they_summarize(sim: SimServer, api: Any) -> None:
    c = api(sim)
    members = Counter(m["segment_id"] for m in truth(sim, "segment_memberships"))
    for seg in truth(sim, "segments"):
        assert seg["contact_count"] == members[seg["id"]] > 0
        assert c.get(f"/segments/{seg['id']}").json()["contact_count"] == members[seg["id"]]
        est = c.post(f"/segments/{seg['id']}/estimate").json()
        assert est["estimated_count"] == members[seg["id"]]
        assert est["total_contacts"] == len(truth(sim, "contacts"))

    responses = truth(sim, "survey_responses")
    stats = by(truth(sim, "survey_stats"), "survey_id")
    for srv in truth(sim, "surveys"):
        mine = [r for r in responses if r["survey_id"] == srv["id"]]
        st = stats[srv["id"]]
        api_st = c.get(f"/surveys/{srv['id']}/stats").json()
        assert {k: v for k, v in api_st.items() if k != "request_id"} == st
        assert st["total_responses"] == len(mine) and st["total_sent"] >= len(mine)
        cats = Counter(r["category"] for r in mine)
        assert st["breakdown"] == {"promoters": cats["promoter"], "passives": cats["passive"],
                                   "detractors": cats["detractor"]}
        scores = [r["score"] for r in mine if r["score"] is not None]
        if scores:
            assert st["average_score"] == pytest.approx(sum(scores) / len(scores), abs=1e-3)
        if srv["type"] == "nps":
            assert st["nps_score"] == pytest.approx(
                100 * (cats["promoter"] - cats["detractor"]) / len(mine), abs=0.05)
            assert all((r["score"] >= 9) == (r["category"] == "promoter") for r in mine)
        else:
            assert st["nps_score"] is None and set(cats) == {None}

    links = truth(sim, "referral_links")
    conversions = truth(sim, "referral_conversions")
    per_link = Counter(cv["link_code"] for cv in conversions)
    for link in links:
        assert link["conversions"] == per_link[link["code"]]
        assert c.get(f"/referrals/links/{link['code']}").json()["conversions"] == \
            per_link[link["code"]]
    board = truth(sim, "referral_leaderboard")
    for prog in truth(sim, "referral_programs"):
        mine = [cv for cv in conversions if cv["program_id"] == prog["id"]]
        st = c.get(f"/referrals/programs/{prog['id']}").json()["stats"]
        assert st == {"links": sum(1 for lk in links if lk["program_id"] == prog["id"]),
                      "conversions": len(mine),
                      "rewards_issued": sum(1 for cv in mine if cv["reward_status"] == "issued")}
        rows = [b for b in board if b["program_id"] == prog["id"]]
        referred = Counter(cv["referrer_contact_id"] for cv in mine)
        assert {r["contact_id"]: r["referrals"] for r in rows if r["referrals"]} == referred
        assert [r["referrals"] for r in rows] == sorted((r["referrals"] for r in rows),
                                                        reverse=True)

    entries = Counter(e["waitlist_id"] for e in truth(sim, "waitlist_entries"))
    for wl in truth(sim, "waitlists"):
        assert wl["total_entries"] == entries[wl["id"]] > 0
        assert c.get(f"/waitlists/{wl['id']}").json()["total_entries"] == entries[wl["id"]]

    overview = truth(sim, "analytics_overview")[0]
    assert {k: v for k, v in c.get("/analytics/overview").json().items()
            if k != "request_id"} == overview
    now = control(sim, "GET", "info").json()["now"]
    contacts = truth(sim, "contacts")
    assert overview["total_contacts"] == len(contacts)
    month_ago = (datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(days=30))
    assert overview["contacts_30d"] == sum(
        1 for x in contacts if x["created_at"] >= month_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    all_events = truth(sim, "events")
    assert overview["events_today"] == sum(1 for e in all_events if e["timestamp"][:10] == now[:10])
    assert overview["referral_conversion_rate"] == round(len(conversions) / len(links), 4)
    for st in truth(sim, "campaign_stats"):
        x = st["stats"]
        if x["delivered"]:
            assert x["open_rate"] == round(x["opened"] / x["delivered"], 4)
            assert x["click_rate"] == round(x["clicked"] / x["delivered"], 4)
        assert x["clicked"] <= x["opened"] <= x["delivered"] <= x["sent"]
    assert overview["active_campaigns"] == sum(1 for x in truth(sim, "campaigns")
                                               if x["status"] == "active")
    daily = truth(sim, "daily_event_counts")
    assert sum(d["count"] for d in daily) == 3000

    memberships = truth(sim, "segment_memberships")
    for profile in truth(sim, "contact_profiles")[:40]:
        assert sorted(profile["segments"]) == sorted(
            m["segment_id"] for m in memberships if m["contact_id"] == profile["id"])
        made = [lk for lk in links if lk["contact_id"] == profile["id"]]
        assert profile["referral_stats"] == {"referrals_made": len(made),
                                             "conversions": sum(lk["conversions"] for lk in made)}
        api_profile = c.get(f"/contacts/{profile['id']}").json()
        assert {k: v for k, v in api_profile.items() if k != "request_id"} == profile


def test_data_is_realistically_messy(sim: SimServer) -> None:
    contacts = truth(sim, "contacts")
    names = [c["traits"]["name"] for c in contacts]
    assert sum(1 for n in names if not n.isascii()) > len(names) // 3
    assert any(c["email"] is None for c in contacts)
    assert any(c["external_id"] is None for c in contacts)
    key_sets = Counter(frozenset(c["traits"]) for c in contacts)
    assert len(key_sets) > 20  # traits' keys vary from contact to contact
    assert any(isinstance(c["traits"].get("address"), dict) for c in contacts)
    assert any(len(c["traits"].get("bio", "")) > 1000 for c in contacts)
    assert any(c["tags"] == [] for c in contacts) and any(len(c["tags"]) >= 2 for c in contacts)
    created = sorted(c["created_at"] for c in contacts)
    assert created[0] < "2024-09-01" and created[-1] > "2026-03-01"  # two years of history
    events = truth(sim, "events")
    assert len({e["event"] for e in events}) >= 10
    assert any(e["event"].startswith("$") for e in events)
    assert {e["type"] for e in events} >= {"track", "page", "identify"}
    assert all(isinstance(e["context"]["library"], dict) for e in events)
    assert any(e["context"]["page"] is None for e in events)
    assert any(isinstance(e["context"]["page"], dict) and e["context"]["page"]["referrer"]
               for e in events)
    assert any(e["context"]["campaign"] for e in events)
    prop_keys = Counter(frozenset(e["properties"]) for e in events)
    assert len(prop_keys) > 5
    assert any(isinstance(e["properties"].get("items"), list) for e in events)
    assert all(e["received_at"] >= e["timestamp"] for e in events)
    assert any(r["comment"] is None for r in truth(sim, "survey_responses"))


# ---- writes through the API ----------------------------------------------------------------

@pytest.fixture
def ws(make_sim: Any) -> SimServer:
    return make_sim(contacts=80, events=800)


def test_patch_contact_merges_traits_replaces_tags_and_bumps_updated_at(ws: SimServer,
                                                                         api: Any) -> None:
    c = api(ws)
    before = truth(ws, "contacts")[3]
    old_traits = dict(before["traits"])
    r = c.patch(f"/contacts/{before['id']}", json={
        "traits": {"plan": "enterprise", "nested": {"a": [1, "ü"]}, "name": None},
        "tags": ["alpha", "beta"]})
    assert r.status_code == 200
    after = r.json()
    expected = {k: v for k, v in old_traits.items() if k != "name"}
    expected.update({"plan": "enterprise", "nested": {"a": [1, "ü"]}})
    assert after["traits"] == expected  # merged key by key; null removes a key
    assert after["tags"] == ["alpha", "beta"]  # replaced
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    row = by(truth(ws, "contacts"))[before["id"]]
    assert row == {k: v for k, v in after.items() if k != "request_id"}
    # A second PATCH moves updated_at again; a traits-less PATCH keeps traits.
    again = c.patch(f"/contacts/{before['id']}", json={"tags": []}).json()
    assert again["updated_at"] > after["updated_at"]
    assert again["traits"] == expected and again["tags"] == []
    assert c.patch(f"/contacts/{before['id']}", json={"tags": "vip"}).status_code == 422
    assert c.patch("/contacts/con_doesnotexist00000", json={}).status_code == 404


def test_delete_contact_hides_it_everywhere(ws: SimServer, api: Any) -> None:
    c = api(ws)
    members = truth(ws, "segment_memberships")
    victim = members[0]["contact_id"]
    seg = members[0]["segment_id"]
    count = c.get(f"/segments/{seg}").json()["contact_count"]
    assert c.delete(f"/contacts/{victim}").status_code == 204
    r = c.get(f"/contacts/{victim}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert victim not in {x["id"] for x in walk(c, "/contacts")}
    assert victim not in {x["contact_id"] for x in walk(c, f"/segments/{seg}/contacts")}
    assert victim not in {x["id"] for x in walk(c, "/contacts", {"segment_id": seg})}
    assert c.get(f"/segments/{seg}").json()["contact_count"] == count - 1
    assert victim not in by(truth(ws, "contacts"))
    assert victim not in {m["contact_id"] for m in truth(ws, "segment_memberships")}
    gone = by(truth(ws, "contacts", include_deleted=True))[victim]
    assert gone["deleted_at"] >= gone["updated_at"]
    assert "deleted_at" not in truth(ws, "contacts")[0]
    assert c.delete(f"/contacts/{victim}").status_code == 404
    assert c.patch(f"/contacts/{victim}", json={"tags": []}).status_code == 404


def test_merge_moves_events_to_the_target_and_deletes_the_source(ws: SimServer,
                                                                 api: Any) -> None:
    c = api(ws)
    per_contact = Counter(e["contact_id"] for e in truth(ws, "events"))
    live = by(truth(ws, "contacts"))
    target, source = [cid for cid, _ in per_contact.most_common() if cid in live][:2]
    source_tags = set(live[source]["tags"])
    r = c.post(f"/contacts/{target}/merge", json={"source_contact_id": source,
                                                  "conflict_resolution": "prefer_target"})
    assert r.status_code == 200
    merged = r.json()
    assert merged["id"] == target and set(merged["tags"]) >= source_tags
    assert merged["traits"]["name"] == live[target]["traits"]["name"]  # target wins conflicts
    events = truth(ws, "events")
    assert not any(e["contact_id"] == source for e in events)
    mine = [e for e in events if e["contact_id"] == target]
    assert len(mine) == per_contact[target] + per_contact[source]
    assert all(e["user_id"] == merged["external_id"] for e in mine)
    assert walk(c, f"/contacts/{target}/events") == mine
    assert walk(c, "/analytics/events", {"contact_id": source}) == []
    assert c.get(f"/contacts/{source}").status_code == 404
    assert "deleted_at" in by(truth(ws, "contacts", include_deleted=True))[source]
    assert c.post(f"/contacts/{target}/merge",
                  json={"source_contact_id": target}).status_code == 409
    assert c.post(f"/contacts/{target}/merge",
                  json={"source_contact_id": source}).status_code == 404
    assert c.post(f"/contacts/{target}/merge", json={}).status_code == 422


def test_segment_writes(ws: SimServer, api: Any) -> None:
    c = api(ws)
    rules = {"operator": "OR", "conditions": [
        {"field": "traits.plan", "op": "eq", "value": "pro"},
        {"operator": "AND", "conditions": [{"field": "tags", "op": "contains",
                                            "value": "vip", "window": "30d"}]}]}
    r = c.post("/segments", json={"name": "Pros", "rules": rules})
    assert r.status_code == 201
    seg = r.json()
    assert seg["id"].startswith("seg_") and seg["contact_count"] == 0
    assert seg["rules"]["conditions"][0] == {"field": "traits.plan", "op": "eq",
                                             "value": "pro", "window": None}
    assert seg["description"] is None
    upd = c.patch(f"/segments/{seg['id']}", json={"name": "Pro plan"}).json()
    assert upd["name"] == "Pro plan" and upd["updated_at"] > seg["updated_at"]
    assert upd["rules"] == seg["rules"]
    assert by(truth(ws, "segments"))[seg["id"]]["name"] == "Pro plan"
    assert c.post("/segments", json={"name": "x"}).status_code == 422
    assert c.post("/segments", json={"name": "x", "rules": {"operator": "XOR",
                                                            "conditions": []}}).status_code == 422
    assert c.delete(f"/segments/{seg['id']}").status_code == 204
    assert c.get(f"/segments/{seg['id']}").status_code == 404
    assert seg["id"] not in {s["id"] for s in walk(c, "/segments")}
    assert c.get("/contacts", params={"segment_id": seg["id"]}).status_code == 404


def test_campaign_writes_and_lifecycle(ws: SimServer, api: Any) -> None:
    c = api(ws)
    seg = truth(ws, "segments")[0]["id"]
    r = c.post("/campaigns", json={"name": "Spring", "type": "broadcast", "segment_id": seg,
                                   "subject": "Hi", "template_id": "tmpl_1",
                                   "scheduled_at": "2026-07-01T11:00:00+02:00"})
    assert r.status_code == 201
    camp = r.json()
    assert camp["status"] == "draft" and camp["segment_id"] == seg
    assert camp["scheduled_at"] == "2026-07-01T09:00:00.000Z"  # the API's timestamp format
    assert c.get(f"/campaigns/{camp['id']}/stats").json()["status"] == "draft"
    act = c.post(f"/campaigns/{camp['id']}/activate").json()
    assert act["status"] == "active" and act["updated_at"] > camp["updated_at"]
    assert c.get(f"/campaigns/{camp['id']}/stats").json()["status"] == "active"
    paused = c.post(f"/campaigns/{camp['id']}/pause").json()
    assert paused["status"] == "paused"
    assert by(truth(ws, "campaign_stats"), "campaign_id")[camp["id"]]["status"] == "paused"
    assert c.patch(f"/campaigns/{camp['id']}", json={"name": "Spring 2"}).json()["name"] == \
        "Spring 2"
    assert c.post(f"/campaigns/{camp['id']}/test", json={"emails": ["qa@example.com"]}).json() \
        ["sent"] is True
    assert c.post("/campaigns", json={"name": "x", "segment_id": "seg_nope"}).status_code == 422
    assert c.post("/campaigns", json={"name": "x", "scheduled_at": "soon"}).status_code == 422
    r = c.post("/campaigns", json={"name": "x", "scheduled_at": "9999-12-31T23:00:00-05:00"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "scheduled_at"
    done = next((x for x in truth(ws, "campaigns") if x["status"] in ("completed", "archived")),
                None)
    assert done is not None
    r = c.post(f"/campaigns/{done['id']}/activate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert c.post(f"/campaigns/{camp['id']}/activate").json()["status"] == "active"
    assert c.post("/campaigns/camp_doesnotexist0000/pause").status_code == 404


def test_survey_writes(ws: SimServer, api: Any) -> None:
    c = api(ws)
    r = c.post("/surveys", json={"name": "NPS Q3", "type": "nps", "question": "Recommend us?",
                                 "frequency_cap": {"max_per_contact": 2}})
    assert r.status_code == 201
    srv = r.json()
    assert srv["status"] == "draft" and srv["type"] == "nps"
    assert srv["frequency_cap"] == {"max_per_contact": 2, "period_days": 90}
    upd = c.patch(f"/surveys/{srv['id']}", json={"question": "How likely…?"}).json()
    assert upd["question"] == "How likely…?" and upd["updated_at"] > srv["updated_at"]
    act = c.post(f"/surveys/{srv['id']}/activate").json()
    assert act["status"] == "active"
    assert by(truth(ws, "surveys"))[srv["id"]]["status"] == "active"
    assert walk(c, f"/surveys/{srv['id']}/responses") == []
    st = c.get(f"/surveys/{srv['id']}/stats").json()
    assert st["total_responses"] == 0 and st["nps_score"] is None


def test_webhook_writes(ws: SimServer, api: Any) -> None:
    c = api(ws)
    r = c.post("/webhooks/endpoints", json={"url": "https://hooks.example.com/in",
                                            "events": ["contact.*"], "secret": "whsec_mine"})
    assert r.status_code == 201
    hook = r.json()
    assert hook["secret"] == "whsec_mine" and hook["status"] == "active"
    listed = by(walk(c, "/webhooks/endpoints"))[hook["id"]]
    assert "secret" not in listed and "secret" not in by(truth(ws, "webhook_endpoints"))[hook["id"]]
    upd = c.patch(f"/webhooks/endpoints/{hook['id']}", json={"status": "disabled"}).json()
    assert upd["status"] == "disabled" and upd["updated_at"] > hook["updated_at"]
    assert walk(c, f"/webhooks/endpoints/{hook['id']}/logs") == []
    assert c.post(f"/webhooks/endpoints/{hook['id']}/test").json()["sent"] is True
    logs = walk(c, f"/webhooks/endpoints/{hook['id']}/logs")
    assert len(logs) == 1 and logs[0]["id"].startswith("whd_")
    assert c.post("/webhooks/endpoints", json={"url": "not a url",
                                               "events": ["x"]}).status_code == 422
    assert c.delete(f"/webhooks/endpoints/{hook['id']}").status_code == 204
    assert hook["id"] not in by(walk(c, "/webhooks/endpoints"))
    assert c.get(f"/webhooks/endpoints/{hook['id']}/logs").status_code == 404


def test_waitlist_writes(ws: SimServer, api: Any) -> None:
    c = api(ws)
    r = c.post("/waitlists", json={"name": "Beta 2", "slug": "beta-2", "referral_boost": 3})
    assert r.status_code == 201
    wl = r.json()
    assert wl["total_entries"] == 0 and wl["slug"] == "beta-2" and wl["auto_approve"] is False
    for i in range(5):
        r = c.post(f"/waitlists/{wl['id']}/entries", json={"email": f"p{i}@example.com",
                                                           "traits": {"source": "test"}})
        assert r.status_code == 201
        entry = r.json()
        assert entry["position"] == i + 1 and entry["status"] == "waiting"
        assert c.get(f"/contacts/{entry['contact_id']}").json()["email"] == f"p{i}@example.com"
    dup = c.post(f"/waitlists/{wl['id']}/entries", json={"email": "p0@example.com"})
    assert dup.status_code == 409
    page = c.get(f"/waitlists/{wl['id']}/entries").json()
    assert page["total_entries"] == 5 == c.get(f"/waitlists/{wl['id']}").json()["total_entries"]
    entries = page["data"]
    one = c.post(f"/waitlists/{wl['id']}/entries/{entries[3]['id']}/approve").json()
    assert one["status"] == "approved" and one["id"] == entries[3]["id"]
    batch = c.post(f"/waitlists/{wl['id']}/entries/approve-batch", json={"count": 2}).json()
    assert batch["approved"] == 2
    statuses = [e["status"] for e in walk(c, f"/waitlists/{wl['id']}/entries")]
    assert statuses == ["approved", "approved", "waiting", "approved", "waiting"]
    rows = [e for e in truth(ws, "waitlist_entries") if e["waitlist_id"] == wl["id"]]
    assert [e["status"] for e in rows] == statuses
    assert c.post(f"/waitlists/{wl['id']}/entries/approve-batch",
                  json={"count": 0}).status_code == 422
    assert c.post(f"/waitlists/{wl['id']}/entries/wle_doesnotexist0000/approve").status_code \
        == 404


def test_referral_and_settings_writes(ws: SimServer, api: Any) -> None:
    c = api(ws)
    r = c.post("/referrals/programs", json={"name": "Friends", "reward_type": "credit",
                                            "reward_amount": 10, "limits": {}})
    assert r.status_code == 201
    prog = r.json()
    assert prog["limits"] == {"max_referrals_per_contact": None, "conversion_window_days": 30}
    referrer, referred = (x["id"] for x in truth(ws, "contacts")[:2])
    link = c.post("/referrals/links", json={"program_id": prog["id"], "contact_id": referrer,
                                            "channel": "sms"}).json()
    assert link["channel"] == "sms" and link["conversions"] == 0
    assert c.get(f"/referrals/links/{link['code']}").json()["id"] == link["id"]
    assert walk(c, f"/referrals/programs/{prog['id']}/links") == [
        {k: v for k, v in link.items() if k != "request_id"}]
    conv = c.post("/referrals/conversions", json={"link_code": link["code"],
                                                  "referred_contact_id": referred,
                                                  "conversion_event": "purchase"}).json()
    assert conv["referrer_contact_id"] == referrer and conv["reward_status"] == "pending"
    assert c.get(f"/referrals/links/{link['code']}").json()["conversions"] == 1
    assert c.get(f"/referrals/programs/{prog['id']}").json()["stats"] == \
        {"links": 1, "conversions": 1, "rewards_issued": 0}
    board = c.get("/referrals/leaderboard", params={"program_id": prog["id"]}).json()
    assert board["data"][0]["contact_id"] == referrer and board["data"][0]["referrals"] == 1
    assert c.post("/referrals/links", json={"program_id": prog["id"],
                                            "contact_id": "con_nope"}).status_code == 404

    before = c.get("/settings").json()
    after = c.patch("/settings", json={"name": "Acme Europe", "timezone": "UTC"}).json()
    assert after["name"] == "Acme Europe" and after["timezone"] == "UTC"
    assert after["updated_at"] > before["updated_at"]
    assert truth(ws, "project_settings")[0]["name"] == "Acme Europe"


def test_leaderboard_follows_every_write_after_it_was_read(ws: SimServer, api: Any) -> None:
    """The leaderboard is computed once per revision of the data: a read before a write must
    not be served after it (API writes and /_sim/mutate both change it)."""
    c = api(ws)
    prog = truth(ws, "referral_programs")[0]["id"]

    def board() -> list[Row]:
        return walk(c, "/referrals/leaderboard", {"program_id": prog})

    def truth_board() -> list[Row]:
        return [{k: v for k, v in r.items() if k != "program_id"}
                for r in truth(ws, "referral_leaderboard") if r["program_id"] == prog]

    before = board()
    assert before == truth_board() and before == board()
    link = next(r for r in truth(ws, "referral_links") if r["program_id"] == prog)
    fresh = [r["id"] for r in truth(ws, "contacts")][-1]
    for _ in range(5):  # enough to move the link's owner up the ranking
        assert c.post("/referrals/conversions", json={
            "link_code": link["code"], "referred_contact_id": fresh}).status_code == 201
    after = board()
    mine = next(r for r in after if r["contact_id"] == link["contact_id"])
    old = next((r["referrals"] for r in before if r["contact_id"] == link["contact_id"]), 0)
    assert mine["referrals"] == old + 5 and after == truth_board()
    assert control(ws, "POST", "mutate", json={
        "referral_conversions": {"create": 6}}).status_code == 200
    assert board() == truth_board() != after


# ---- mutate --------------------------------------------------------------------------------

def test_mutate_reports_what_it_did_and_truth_follows(ws: SimServer) -> None:
    n_events = len(truth(ws, "events"))
    info = control(ws, "GET", "info").json()
    r = control(ws, "POST", "mutate", json={
        "advance": "6h", "contacts": {"create": 4, "update": 6, "delete": 2},
        "events": {"create": 120}, "survey_responses": {"create": 5},
        "segments": {"create": 1}})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["from"] == info["now"] and done["now"] == done["to"] > done["from"]
    assert control(ws, "GET", "info").json()["now"] == done["now"]
    live = by(truth(ws, "contacts"))
    every = by(truth(ws, "contacts", include_deleted=True))
    created, updated, deleted = (done["contacts"][k] for k in ("create", "update", "delete"))
    assert len(created) == 4 and len(deleted) == 2 and updated
    for cid in created:
        assert done["from"] < live[cid]["created_at"] <= done["to"]
    for cid in updated:
        if cid in live:
            assert done["from"] < live[cid]["updated_at"] <= done["to"]
    for cid in deleted:
        assert cid not in live and done["from"] < every[cid]["deleted_at"] <= done["to"]
    events = truth(ws, "events")
    assert done["events"]["create"] == 120 and len(events) == n_events + 120
    assert sum(1 for e in events if done["from"] < e["timestamp"] <= done["to"]) == 120
    responses = by(truth(ws, "survey_responses"))
    assert len(done["survey_responses"]["create"]) == 5
    for rid in done["survey_responses"]["create"]:
        assert done["from"] < responses[rid]["responded_at"] <= done["to"]
    assert done["segments"]["create"][0] in by(truth(ws, "segments"))


def test_bare_advance_applies_a_default_day(ws: SimServer) -> None:
    n_events = len(truth(ws, "events"))
    done = control(ws, "POST", "mutate", json={"advance": "1d"}).json()
    active = {t for t, v in done.items() if isinstance(v, dict)}
    assert {"contacts", "events", "survey_responses", "segment_memberships", "referral_links",
            "waitlist_entries", "webhook_deliveries"} <= active
    assert done["contacts"]["create"] and done["events"]["create"] > 0
    # The default day includes a few late events of every age, 3 s to 5 days old on receipt.
    late = done["events"]["late"]
    assert set(late) == {"3s", "1h", "1d", "5d"} and all(n >= 1 for n in late.values())
    events = truth(ws, "events")
    assert len(events) == n_events + done["events"]["create"] + sum(late.values())
    old = [e for e in events if done["from"] < e["received_at"] <= done["to"]
           and e["timestamp"] <= done["from"]]
    assert len(old) >= late["1d"] + late["5d"]
    # One day later.
    assert done["now"][:10] == "2026-06-02"
    # With activity off, only the clock moves.
    before = raw_truth(ws, "contacts")
    quiet = control(ws, "POST", "mutate", json={"advance": "1d", "activity": False}).json()
    assert set(quiet) == {"from", "to", "now"} and quiet["now"][:10] == "2026-06-03"
    assert raw_truth(ws, "contacts") == before


def test_mutate_refuses_what_it_cannot_do(ws: SimServer) -> None:
    before = raw_truth(ws, "contacts")
    for bad in ({"not_a_table": {"create": 1}}, {"contacts": {"explode": 1}},
                {"contacts": 3}, {"contacts": {"create": -1}}, {"advance": "soon"},
                {"contacts": {"create": 2}, "events": {"delete": 1}}):
        r = control(ws, "POST", "mutate", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]
    assert raw_truth(ws, "contacts") == before  # nothing applied, not even partly


# ---- truth ---------------------------------------------------------------------------------

PARENT_KEYS = {"survey_responses": "survey_id", "segment_memberships": "segment_id",
               "waitlist_entries": "waitlist_id", "webhook_deliveries": "endpoint_id",
               "referral_leaderboard": "program_id", "referral_links": "program_id",
               "referral_conversions": "link_code", "campaign_stats": "campaign_id",
               "survey_stats": "survey_id"}


def test_truth_serves_every_table_with_parent_keys(sim: SimServer) -> None:
    assert len(TABLES) >= 20
    for table in TABLES:
        rows = truth(sim, table)
        assert rows, table
        assert all(isinstance(r, dict) and r for r in rows), table
        if table in PARENT_KEYS:
            assert all(r[PARENT_KEYS[table]] for r in rows), table
    parents = {"survey_responses": "surveys", "segment_memberships": "segments",
               "waitlist_entries": "waitlists", "webhook_deliveries": "webhook_endpoints",
               "referral_leaderboard": "referral_programs"}
    for child, parent in parents.items():
        ids = {p["id"] for p in truth(sim, parent)}
        assert {r[PARENT_KEYS[child]] for r in truth(sim, child)} <= ids, child
    r = control(sim, "GET", "truth/not_a_table")
    assert r.status_code == 404 and "contacts" in r.json()["tables"]


def test_truth_of_child_rows_matches_the_api_plus_the_parent_key(sim: SimServer,
                                                                  api: Any) -> None:
    c = api(sim)
    srv = truth(sim, "surveys")[0]["id"]
    rows = [r for r in truth(sim, "survey_responses") if r["survey_id"] == srv]
    assert [r | {"survey_id": srv} for r in walk(c, f"/surveys/{srv}/responses")] == rows
    seg = truth(sim, "segments")[0]["id"]
    rows = [r for r in truth(sim, "segment_memberships") if r["segment_id"] == seg]
    assert [r | {"segment_id": seg} for r in walk(c, f"/segments/{seg}/contacts")] == rows


# ---- analytics agree with the events ------------------------------------------------------

def test_analytics_query_counts_agree_with_the_events(sim: SimServer, api: Any) -> None:
    c = api(sim)
    events = truth(sim, "events")
    in_range = [e for e in events if "2026-01-01" <= e["timestamp"][:10] <= "2026-05-31"]

    def query(**body: Any) -> Row:
        r = c.post("/analytics/query", json={"from": "2026-01-01", "to": "2026-05-31", **body})
        assert r.status_code == 200, r.text
        return dict(r.json())

    daily = query(type="event_count")
    per_day = Counter(e["timestamp"][:10] for e in in_range)
    assert {d["date"]: d["groups"]["all"] for d in daily["data"]} == per_day
    assert daily["total"] == len(in_range)
    grouped = query(type="event_count", group_by="event", event="login")
    logins = Counter(e["timestamp"][:10] for e in in_range if e["event"] == "login")
    assert {d["date"]: d["groups"] for d in grouped["data"]} == \
        {d: {"login": n} for d, n in logins.items()}
    for interval in ("week", "month"):
        res = query(type="event_count", interval=interval)
        assert res["total"] == len(in_range)
        assert all(d["date"] <= "2026-05-31" for d in res["data"])
    assert [d["date"] for d in query(type="event_count", interval="month")["data"]] == \
        ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"]
    uniq = query(type="unique_contacts")
    per_day_contacts = {d: len({e["contact_id"] for e in in_range if e["timestamp"][:10] == d})
                        for d in per_day}
    assert {d["date"]: d["groups"]["all"] for d in uniq["data"]} == per_day_contacts
    assert uniq["total"] == len({e["contact_id"] for e in in_range})
    # Uniques do not add up: a contact active on several days of a month counts once in it.
    monthly = query(type="unique_contacts", interval="month", group_by="event")
    may = [e for e in in_range if e["timestamp"][:7] == "2026-05"]
    assert monthly["data"][-1] == {"date": "2026-05-01", "groups": {
        name: len({e["contact_id"] for e in may if e["event"] == name})
        for name in sorted({e["event"] for e in may})}}
    # At most 366 intervals, whatever the interval; a far-future range is simply empty.
    for body in ({"from": "2025-01-01", "to": "2026-05-31"},
                 {"from": "2000-01-01", "to": "2026-05-31", "interval": "week"},
                 {"from": "1990-01-01", "to": "2026-05-31", "interval": "month"}):
        r = c.post("/analytics/query", json={"type": "event_count", **body})
        assert r.status_code == 422, body
    r = c.post("/analytics/query", json={"type": "unique_contacts", "from": "9999-12-01",
                                         "to": "9999-12-31"})
    assert r.status_code == 200 and r.json()["total"] == 0
