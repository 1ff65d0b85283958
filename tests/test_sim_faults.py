"""Seeded fault injection of the local GrowthOS server (PUT /_sim/faults), on real HTTP."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import control, truth

from growthos_sim import DEFAULT_KEY, SimServer

AUTH = {"Authorization": f"Bearer {DEFAULT_KEY}"}
OFF = {"error_rate": 0.0, "rate_limit_rate": 0.0, "disconnect_rate": 0.0, "truncate_rate": 0.0,
       "cursor_expiry_rate": 0.0, "latency_ms": 0}


def set_faults(s: SimServer, **cfg: Any) -> dict[str, Any]:
    r = control(s, "PUT", "faults", json=cfg)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def fs(make_sim: Any) -> SimServer:
    return make_sim(contacts=60, events=600)


@pytest.fixture
def client(fs: SimServer) -> Any:
    with httpx.Client(base_url=fs.base_url, headers=AUTH, timeout=30) as c:
        yield c


def first_cursor(c: httpx.Client) -> str:
    return str(c.get("/contacts", params={"limit": 2}).json()["next_cursor"])


def outcome(c: httpx.Client, path: str, params: dict[str, Any] | None = None) -> str:
    """What the client saw: ok, truncated, disconnect, or the status and error code."""
    try:
        r = c.get(path, params=params)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "disconnect"
    try:
        body = r.json()
    except json.JSONDecodeError:
        return f"{r.status_code}:truncated"
    if r.status_code >= 400:
        return f"{r.status_code}:{body['error']['code']}"
    return "ok"


def test_error_rate_answers_500_in_the_envelope(fs: SimServer, client: httpx.Client) -> None:
    set_faults(fs, seed=1, error_rate=1.0)
    for path in ("/contacts", "/segments", "/analytics/overview"):
        r = client.get(path)
        assert r.status_code == 500
        body = r.json()
        assert set(body) == {"error", "request_id"}
        assert body["error"]["code"] == "internal_error"
        assert body["request_id"].startswith("req_")
        assert "X-RateLimit-Limit" in r.headers
    # A write is refused before it happens: the fault is a failed request, not a lost answer.
    cid = truth(fs, "contacts")[0]["id"]
    assert client.patch(f"/contacts/{cid}", json={"tags": ["never"]}).status_code == 500
    assert "never" not in truth(fs, "contacts")[0]["tags"]


def test_rate_limit_rate_answers_429_with_retry_after(fs: SimServer,
                                                      client: httpx.Client) -> None:
    set_faults(fs, seed=1, rate_limit_rate=1.0)
    for _ in range(3):
        r = client.get("/contacts")
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        assert "X-RateLimit-Remaining" in r.headers


def test_disconnect_rate_closes_the_connection_without_an_answer(fs: SimServer) -> None:
    set_faults(fs, seed=1, disconnect_rate=1.0)
    for _ in range(3):
        with (httpx.Client(base_url=fs.base_url, headers=AUTH, timeout=10) as c,
              pytest.raises((httpx.RemoteProtocolError, httpx.ReadError))):
            c.get("/contacts")
    set_faults(fs)
    with httpx.Client(base_url=fs.base_url, headers=AUTH, timeout=10) as c:
        assert c.get("/contacts").status_code == 200


def test_truncate_rate_cuts_the_body_mid_json(fs: SimServer, client: httpx.Client) -> None:
    full = client.get("/contacts", params={"limit": 5})
    set_faults(fs, seed=1, truncate_rate=1.0)
    r = client.get("/contacts", params={"limit": 5})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert 0 < len(r.content) < len(full.content)
    assert full.content.startswith(r.content)  # a prefix of the real answer, cut off
    assert int(r.headers["Content-Length"]) == len(r.content)


def test_cursor_expiry_rate_rejects_only_requests_with_a_cursor(fs: SimServer,
                                                                client: httpx.Client) -> None:
    cursor = first_cursor(client)
    set_faults(fs, seed=1, cursor_expiry_rate=1.0)
    for _ in range(5):
        assert client.get("/contacts", params={"limit": 2}).status_code == 200
        assert client.get("/analytics/events").status_code == 200
        r = client.get("/contacts", params={"limit": 2, "cursor": cursor})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "cursor_expired"
    # A restart without the cursor is the documented way out.
    assert client.get("/contacts", params={"limit": 2}).json()["data"]


def test_latency_ms_delays_every_answer(make_sim: Any) -> None:
    s = make_sim(contacts=50, events=500)
    with httpx.Client(base_url=s.base_url, headers=AUTH, timeout=30) as c:
        c.get("/segments")  # connect first
        t0 = time.perf_counter()
        c.get("/segments")
        base = time.perf_counter() - t0
        set_faults(s, latency_ms=150)
        for path in ("/segments", "/contacts/con_doesnotexist00000"):
            t0 = time.perf_counter()
            c.get(path)
            assert time.perf_counter() - t0 >= 0.12, path
        set_faults(s)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            c.get("/segments")
            times.append(time.perf_counter() - t0)
        assert sorted(times)[1] < base + 0.1
    # The server-wide --latency-ms option works the same way.
    slow = make_sim(contacts=50, events=500, latency_ms=100)
    with httpx.Client(base_url=slow.base_url, headers=AUTH, timeout=30) as c:
        c.get("/segments")
        t0 = time.perf_counter()
        c.get("/segments")
        assert time.perf_counter() - t0 >= 0.08


def test_empty_config_turns_faults_off(fs: SimServer, client: httpx.Client) -> None:
    cfg = set_faults(fs, seed=3, error_rate=1.0, rate_limit_rate=1.0, truncate_rate=1.0,
                     cursor_expiry_rate=1.0, latency_ms=5)
    assert cfg["error_rate"] == 1.0 and cfg["seed"] == 3
    assert client.get("/contacts").status_code == 500
    cfg = set_faults(fs)
    assert {k: cfg[k] for k in OFF} == OFF
    assert control(fs, "GET", "faults").json() == cfg
    cursor = first_cursor(client)
    for _ in range(20):
        assert client.get("/contacts", params={"limit": 2, "cursor": cursor}).status_code == 200


def test_faults_spare_the_control_plane_and_the_document(fs: SimServer) -> None:
    set_faults(fs, seed=1, error_rate=1.0, disconnect_rate=1.0)
    assert httpx.get(f"{fs.url}/openapi/management.yaml", timeout=30).status_code == 200
    assert truth(fs, "contacts")
    assert control(fs, "GET", "stats").status_code == 200
    assert control(fs, "POST", "mutate", json={"events": {"create": 5}}).status_code == 200


def test_invalid_fault_settings_are_refused(fs: SimServer) -> None:
    for bad in ({"error_rate": 1.5}, {"error_rate": -0.1}, {"disconnect_rate": "often"},
                {"explode_rate": 0.1}):
        r = control(fs, "PUT", "faults", json=bad)
        assert r.status_code == 400, bad
        assert "error" in r.json()
    assert control(fs, "GET", "faults").json()["error_rate"] == 0.0


MIXED = {"error_rate": 0.05, "rate_limit_rate": 0.05, "disconnect_rate": 0.05,
         "truncate_rate": 0.05, "cursor_expiry_rate": 0.1}


def run_sequence(s: SimServer, seed: int, n: int = 300) -> list[str]:
    """A fixed request sequence (every third request carries a cursor) under mixed faults."""
    set_faults(s)
    with httpx.Client(base_url=s.base_url, headers=AUTH, timeout=30) as c:
        cursor = first_cursor(c)
        set_faults(s, seed=seed, **MIXED)
        out = []
        for i in range(n):
            params = {"limit": 2, "cursor": cursor} if i % 3 == 0 else {"limit": 2}
            out.append(outcome(c, "/contacts", params))
    set_faults(s)
    return out


def test_mixed_rates_inject_every_kind_and_stats_count_them(fs: SimServer) -> None:
    control(fs, "POST", "reset")  # zero the counters
    seen = run_sequence(fs, seed=7, n=400)
    kinds = Counter(seen)
    expected = {"500:internal_error", "429:rate_limited", "disconnect", "200:truncated",
                "400:cursor_expired", "ok"}
    assert set(kinds) == expected, kinds
    # Roughly the configured rates (the draws are seeded, so this is exact on every run).
    for kind in ("500:internal_error", "429:rate_limited", "disconnect", "200:truncated"):
        assert 5 <= kinds[kind] <= 45, kinds
    assert kinds["ok"] >= 250
    stats = control(fs, "GET", "stats").json()
    assert stats["requests"] == 400 + 1  # plus the request that fetched the cursor
    assert stats["fault_error"] == kinds["500:internal_error"] == stats["status_500"]
    assert stats["fault_rate_limit"] == kinds["429:rate_limited"] == stats["status_429"]
    assert stats["fault_disconnect"] == kinds["disconnect"]
    assert stats["fault_truncate"] == kinds["200:truncated"]
    assert stats["fault_cursor_expiry"] == kinds["400:cursor_expired"] == stats["status_400"]
    assert stats["status_200"] == kinds["ok"] + kinds["200:truncated"] + 1


def test_same_seed_and_requests_give_the_same_faults(fs: SimServer, make_sim: Any) -> None:
    first = run_sequence(fs, seed=42, n=150)
    assert len(set(first)) >= 4  # the sequence is not trivially all "ok"
    assert run_sequence(fs, seed=42, n=150) == first  # re-arming the seed replays it
    other = make_sim(contacts=60, events=600)  # another server, same seed: same faults
    assert run_sequence(other, seed=42, n=150) == first
    assert run_sequence(fs, seed=43, n=150) != first
