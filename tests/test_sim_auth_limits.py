"""Authentication, scopes and rate limits of the local GrowthOS server, on real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import yaml
from conftest import control, truth

from growthos_sim import DEFAULT_KEY, SimServer

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The documented envelope, and nothing else."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["request_id"].startswith("req_") and len(body["request_id"]) == 24
    return body


def assert_rate_headers(r: httpx.Response) -> tuple[int, int, int]:
    for h in RATE_HEADERS:
        assert h in r.headers, (h, r.status_code, dict(r.headers))
    limit, remaining, reset = (int(r.headers[h]) for h in RATE_HEADERS)
    assert 0 <= remaining <= limit
    assert abs(reset - time.time()) < 5
    return limit, remaining, reset


# ---- 401 -----------------------------------------------------------------------------------

def test_missing_wrong_or_malformed_key_is_401(sim: SimServer) -> None:
    url = f"{sim.base_url}/contacts"
    ids = set()
    for headers in ({}, {"Authorization": "Bearer gos_sk_wrong"},
                    {"Authorization": f"Basic {DEFAULT_KEY}"},
                    {"Authorization": DEFAULT_KEY}, {"Authorization": "Bearer  x"},
                    {"Authorization": f"bearer{DEFAULT_KEY}"}):
        r = httpx.get(url, headers=headers, timeout=30)
        body = assert_error(r, 401, "unauthorized")
        assert body["error"]["details"] == []
        assert_rate_headers(r)
        ids.add(body["request_id"])
    assert len(ids) == 6  # a fresh request id each time
    # The document is public, the API is not.
    assert httpx.get(f"{sim.url}/openapi/management.yaml", timeout=30).status_code == 200


def test_key_in_query_string_is_refused(sim: SimServer) -> None:
    for param in ("api_key", "apikey", "key", "token", "access_token"):
        r = httpx.get(f"{sim.base_url}/contacts", params={param: DEFAULT_KEY}, timeout=30)
        body = assert_error(r, 401, "unauthorized")
        assert "header" in body["error"]["message"]
    # Even beside a valid header: a key must never travel in a URL.
    r = httpx.get(f"{sim.base_url}/contacts", params={"api_key": DEFAULT_KEY},
                  headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=30)
    assert_error(r, 401, "unauthorized")


def test_write_keys_cannot_read(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500, keys={"gos_wk_ingest": ["*"], DEFAULT_KEY: ["*"]})
    body = assert_error(api(s, key="gos_wk_ingest").get("/contacts"), 401, "unauthorized")
    assert "gos_wk_" in body["error"]["message"]
    assert api(s).get("/contacts").status_code == 200


# ---- 403 -----------------------------------------------------------------------------------

def _operations(s: SimServer) -> list[tuple[str, str, str]]:
    doc = yaml.safe_load(s.document_bytes)
    return [(m.upper(), p, op["x-required-scope"]) for p, item in doc["paths"].items()
            for m, op in item.items() if m in ("get", "post", "patch", "delete", "put")]


def test_missing_scope_is_403_with_exactly_the_documented_envelope(make_sim: Any,
                                                                   api: Any) -> None:
    s = make_sim(contacts=50, events=500, keys={"gos_sk_reader": ["contacts:read"]})
    c = api(s, key="gos_sk_reader")
    assert c.get("/contacts").status_code == 200
    cid = c.get("/contacts", params={"limit": 1}).json()["data"][0]["id"]
    assert c.get(f"/contacts/{cid}").status_code == 200
    for method, path, scope in (("GET", "/segments", "segments:read"),
                                ("PATCH", f"/contacts/{cid}", "contacts:write"),
                                ("GET", f"/contacts/{cid}/events", "events:read"),
                                ("GET", "/analytics/events", "events:read"),
                                ("GET", "/analytics/overview", "analytics:read")):
        r = c.request(method, path, json={} if method == "PATCH" else None)
        body = assert_error(r, 403, "insufficient_scope")
        assert body == {"error": {"code": "insufficient_scope",
                                  "message": body["error"]["message"],
                                  "details": [{"required_scope": scope,
                                               "granted_scopes": ["contacts:read"]}]},
                        "request_id": body["request_id"]}
        assert_rate_headers(r)
    # The refused PATCH changed nothing.
    before = next(x for x in truth(s, "contacts") if x["id"] == cid)
    assert c.patch(f"/contacts/{cid}", json={"tags": ["x"]}).status_code == 403
    assert next(x for x in truth(s, "contacts") if x["id"] == cid) == before


def test_every_operation_requires_its_documented_scope(make_sim: Any, api: Any) -> None:
    ops = _operations(make_sim(contacts=50, events=500))
    scopes = sorted({scope for _, _, scope in ops})
    keys = {f"gos_sk_only_{sc.replace(':', '_')}": [sc] for sc in scopes}
    keys["gos_sk_nothing"] = ["billing:read"]
    s = make_sim(contacts=50, events=500, keys=keys)
    nothing = api(s, key="gos_sk_nothing")
    for method, path, scope in ops:
        url = path.replace("{id}", "x0").replace("{code}", "x0").replace("{entry_id}", "x0")
        body = assert_error(nothing.request(method, url, json={}), 403, "insufficient_scope")
        assert body["error"]["details"] == [{"required_scope": scope,
                                             "granted_scopes": ["billing:read"]}], (method, path)
        # The key holding exactly that scope gets past authorization (ids here do not exist,
        # so the answer is a 404, a 400 or a 422, never a 401 or 403).
        own = api(s, key=f"gos_sk_only_{scope.replace(':', '_')}")
        r = own.request(method, url, json={})
        assert r.status_code not in (401, 403), (method, path, r.text)


# ---- revoked keys --------------------------------------------------------------------------

def test_revoked_key_works_for_24_hours_of_server_time(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500,
                 keys={DEFAULT_KEY: ["*"], "gos_sk_leaving_soon": ["contacts:read"]})
    admin, leaving = api(s), api(s, key="gos_sk_leaving_soon")
    keys = admin.get("/settings/keys").json()["data"]
    assert len(keys) == 2 and all("key" not in k for k in keys)
    target = next(k for k in keys if k["key_hint"].endswith("soon"))
    assert target["scopes"] == ["contacts:read"]

    assert admin.delete(f"/settings/keys/{target['id']}").status_code == 204
    # Gone from the list at once...
    assert target["id"] not in {k["id"] for k in admin.get("/settings/keys").json()["data"]}
    assert next(k for k in truth(s, "api_keys", include_deleted=True)
                if k["id"] == target["id"])["deleted_at"]
    # ...but the key keeps working during the grace period.
    assert leaving.get("/contacts").status_code == 200
    r = control(s, "POST", "mutate", json={"advance": "23h", "activity": False})
    assert r.status_code == 200 and set(r.json()) == {"from", "to", "now"}  # no activity
    assert leaving.get("/contacts").status_code == 200
    control(s, "POST", "mutate", json={"advance": "2h", "activity": False})
    body = assert_error(leaving.get("/contacts"), 401, "unauthorized")
    assert "revoked" in body["error"]["message"]
    assert admin.get("/contacts").status_code == 200  # other keys are unaffected
    assert admin.delete(f"/settings/keys/{target['id']}").status_code == 404


def test_created_key_is_shown_once_and_works_with_its_scopes(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500)
    admin = api(s)
    r = admin.post("/settings/keys", json={"name": "warehouse sync",
                                            "scopes": ["contacts:read", "events:read"]})
    assert r.status_code == 201
    created = r.json()
    token = created["key"]
    assert token.startswith("gos_sk_") and created["key_hint"].endswith(token[-4:])
    listed = {k["id"]: k for k in admin.get("/settings/keys").json()["data"]}
    assert "key" not in listed[created["id"]]
    assert listed[created["id"]]["name"] == "warehouse sync"
    assert token not in httpx.get(f"{s.base_url}/settings/keys", timeout=30,
                                  headers={"Authorization": f"Bearer {DEFAULT_KEY}"}).text
    fresh = api(s, key=token)
    assert fresh.get("/contacts").status_code == 200
    assert fresh.get("/analytics/events").status_code == 200
    assert_error(fresh.get("/segments"), 403, "insufficient_scope")
    used = {k["id"]: k for k in admin.get("/settings/keys").json()["data"]}[created["id"]]
    assert used["last_used_at"] is not None


# ---- rate limits ---------------------------------------------------------------------------

def test_rate_limit_headers_on_every_response(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500, plan="free")
    c = api(s)
    for r in (c.get("/contacts", params={"limit": 1}),                   # 200
              c.get("/contacts/con_doesnotexist00000"),                  # 404
              c.get("/contacts", params={"limit": 0}),                   # 400
              c.post("/segments", json={"name": 1}),                     # 422
              c.delete("/settings/keys/key_doesnotexist0000"),           # 404 on a write
              httpx.get(f"{s.base_url}/contacts", timeout=30)):          # 401
        limit, _, _ = assert_rate_headers(r)
        assert limit == 10
    for plan, limit in (("growth", 50), ("scale", 100)):
        assert assert_rate_headers(api(make_sim(contacts=50, events=500, plan=plan))
                                   .get("/segments"))[0] == limit


def _burst(c: httpx.Client, n: int) -> list[httpx.Response]:
    return [c.get("/segments", params={"limit": 1}) for _ in range(n)]


def test_burst_over_the_plan_limit_gets_429_with_retry_after(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500, plan="free", keys={DEFAULT_KEY: ["*"],
                                                             "gos_sk_other": ["*"]})
    c = api(s)
    rs = _burst(c, 25)
    limited = [r for r in rs if r.status_code == 429]
    assert {r.status_code for r in rs} == {200, 429}
    # Fixed one-second windows: in each, the first 10 requests are served, the rest refused.
    windows: dict[str, list[int]] = {}
    for r in rs:
        windows.setdefault(r.headers["X-RateLimit-Reset"], []).append(r.status_code)
    for codes in windows.values():
        assert codes == [200] * min(10, len(codes)) + [429] * max(0, len(codes) - 10)
    assert len(limited) >= 5  # 25 quick requests span at most two windows
    for r in limited:
        body = assert_error(r, 429, "rate_limited")
        assert body["error"]["details"] == []
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 2
        _, remaining, _ = assert_rate_headers(r)
        assert remaining == 0
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in rs
                 if r.headers["X-RateLimit-Reset"] == rs[0].headers["X-RateLimit-Reset"]]
    assert remaining == sorted(remaining, reverse=True)
    stats = control(s, "GET", "stats").json()
    assert stats["rate_limited"] == len(limited) and stats["status_429"] == len(limited)

    # The limit is per key: another key is served in the very window the first one exhausted.
    for _ in range(5):
        last = _burst(c, 12)[-1]
        other = api(s, key="gos_sk_other").get("/segments", params={"limit": 1})
        if last.status_code == 429 and \
                other.headers["X-RateLimit-Reset"] == last.headers["X-RateLimit-Reset"]:
            assert other.status_code == 200
            break
    else:
        raise AssertionError("could not land two requests in one one-second window")

    # After the window ends, the key is served again.
    reset = int(last.headers["X-RateLimit-Reset"])
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    assert c.get("/segments").status_code == 200


def test_unlimited_plan_never_429s(make_sim: Any, api: Any) -> None:
    s = make_sim(contacts=50, events=500, plan="unlimited")
    c = api(s)
    rs = _burst(c, 150)
    assert {r.status_code for r in rs} == {200}
    assert all(assert_rate_headers(r)[0] >= 1_000_000 for r in rs[:3])
    assert "rate_limited" not in control(s, "GET", "stats").json()
