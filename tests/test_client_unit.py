"""Unit tests of the GrowthOS client, error mapping and pacing (MockTransport, fake clocks)."""

from __future__ import annotations

import email.utils
import json
import logging
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from growthos_source.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    CursorExpiredError,
    GrowthOSError,
    MalformedResponseError,
    NotFoundError,
    PaginationError,
    RateLimitError,
    ScopeError,
    ServerError,
)
from growthos_source.http import GrowthOSClient, Page, quote_path_segment
from growthos_source.http.pacing import (
    DEFAULT_BURST,
    DEFAULT_SAFETY,
    RateLimiter,
    parse_retry_after,
)
from growthos_source.http.responses import error_from_response
from growthos_source.http.retry import RetryPolicy, Verdict

KEY = "gos_sk_live_S3cretValue0123456789"
BASE = "https://api.test/v1"
POLICY = RetryPolicy()
Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def envelope(code: str, message: str = "", details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []},
            "request_id": "req_abc"}


def make_client(handler: Handler, **kw: Any) -> tuple[GrowthOSClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("backoff_base", 0.01)
    client = GrowthOSClient(BASE, KEY, transport=httpx.MockTransport(handler),
                            sleep=sleeps.append, **kw)
    return client, sleeps


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with the given responses in order (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


OK = httpx.Response(200, json={"data": [], "has_more": False, "next_cursor": None})


# --- classification ---------------------------------------------------------------------------

@pytest.mark.parametrize("status,verdict", [
    (200, Verdict.OK), (204, Verdict.OK),
    (429, Verdict.RETRY), (500, Verdict.RETRY), (502, Verdict.RETRY), (503, Verdict.RETRY),
    (504, Verdict.RETRY), (400, Verdict.FATAL), (401, Verdict.FATAL), (403, Verdict.FATAL),
    (404, Verdict.FATAL), (409, Verdict.FATAL), (410, Verdict.FATAL), (422, Verdict.FATAL),
    (501, Verdict.FATAL), (302, Verdict.FATAL),
])
def test_verdict_status(status: int, verdict: Verdict) -> None:
    assert POLICY.verdict(status) is verdict


@pytest.mark.parametrize("exc,verdict", [
    (httpx.ReadTimeout("t"), Verdict.RETRY), (httpx.ConnectTimeout("t"), Verdict.RETRY),
    (httpx.ConnectError("refused"), Verdict.RETRY), (httpx.ReadError("reset"), Verdict.RETRY),
    (httpx.RemoteProtocolError("peer closed"), Verdict.RETRY),
    (httpx.LocalProtocolError("bad header"), Verdict.FATAL),
    (httpx.UnsupportedProtocol("ftp"), Verdict.FATAL),
])
def test_verdict_exceptions(exc: Exception, verdict: Verdict) -> None:
    assert POLICY.verdict(None, exc) is verdict


def test_verdict_does_not_resend_writes_that_may_have_been_processed() -> None:
    assert POLICY.verdict(500, idempotent=False) is Verdict.FATAL
    assert POLICY.verdict(None, httpx.ReadTimeout("t"), idempotent=False) is Verdict.FATAL
    assert POLICY.verdict(429, idempotent=False) is Verdict.RETRY
    assert POLICY.verdict(None, httpx.ConnectError("refused"), idempotent=False) is Verdict.RETRY


@pytest.mark.parametrize("status,body,cls", [
    (400, envelope("cursor_expired"), CursorExpiredError),
    (400, envelope("invalid_parameter", "limit must be 1..100"), ApiError),
    (401, envelope("unauthorized"), AuthenticationError),
    (403, envelope("insufficient_scope", "", [{"required_scope": "contacts:read",
                                               "granted_scopes": []}]), ScopeError),
    (404, envelope("not_found"), NotFoundError),
    (409, envelope("conflict"), ApiError), (410, envelope("gone"), ApiError),
    (422, envelope("validation_error"), ApiError), (429, envelope("rate_limited"), RateLimitError),
    (500, envelope("internal_error"), ServerError),
])
def test_error_from_response_types(status: int, body: dict[str, Any], cls: type) -> None:
    err = error_from_response(status, json.dumps(body).encode(), "/contacts")
    assert type(err) is cls
    assert err.status == status and err.request_id == "req_abc"
    assert "request_id=req_abc" in str(err) and "\n" not in str(err)


def test_error_from_response_tolerates_non_envelope_bodies() -> None:
    err = error_from_response(502, b"<html><body>Bad gateway</body></html>", "/contacts")
    assert isinstance(err, ServerError) and err.code is None and "Bad gateway" in str(err)
    assert isinstance(error_from_response(400, b"", "/x"), ApiError)
    assert isinstance(error_from_response(403, b"[1, 2]", "/x"), ApiError)
    restored = pickle.loads(pickle.dumps(error_from_response(404, b"{}", "/contacts/x")))
    assert isinstance(restored, NotFoundError) and "/contacts/x" in str(restored)


# --- retries ----------------------------------------------------------------------------------

def test_retry_after_seconds_pauses_everyone_then_succeeds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, wall_clock=clock, sleep=clock.sleep)
    handler, seen = sequence(
        httpx.Response(429, headers={"Retry-After": "3"}, json=envelope("rate_limited")), OK)
    client, _ = make_client(handler, rate_limiter=limiter)
    assert client.request("GET", "/contacts")["data"] == []
    assert len(seen) == 2 and clock.sleeps == [3.0]
    assert client.stats.throttled == 1 and client.stats.retries == 1


def test_retry_after_http_date_is_minimum_wait_on_503() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    handler, seen = sequence(httpx.Response(503, headers={"Retry-After": when}), OK)
    client, sleeps = make_client(handler)
    client.request("GET", "/contacts")
    assert len(seen) == 2 and 3.5 <= sleeps[0] <= 5.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("garbage", 0.0) is None and parse_retry_after(None, 0.0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0


def test_huge_retry_after_gives_up_at_once() -> None:
    handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "3600"}))
    client, _ = make_client(handler)
    with pytest.raises(RateLimitError, match="wait 3600s"):
        client.request("GET", "/contacts")
    assert len(seen) == 1


@pytest.mark.parametrize("response,cls,text", [
    (httpx.Response(503, json=envelope("unavailable")), ServerError, "after 3 attempts"),
    (httpx.Response(429, json=envelope("rate_limited")), RateLimitError, "after 3 attempts"),
    (httpx.ConnectError("connection refused"), ConnectionFailedError, "cannot reach api.test"),
    (httpx.ReadTimeout("timed out"), ConnectionFailedError, "3 attempts"),
    (httpx.RemoteProtocolError("peer closed"), ConnectionFailedError, "check base_url"),
    (httpx.Response(200, content=b'{"data": [{"id"', headers={"content-type": "application/json"}),
     MalformedResponseError, "3 attempts"),
])
def test_attempts_are_capped_and_typed(response: Any, cls: type, text: str) -> None:
    handler, seen = sequence(response)
    client, _ = make_client(handler, max_attempts=3)
    with pytest.raises(cls) as info:
        client.request("GET", "/contacts")
    assert len(seen) == 3 and text in str(info.value)
    assert client.stats.requests_sent == 3 and client.stats.retries == 2


def test_backoff_is_capped_full_jitter() -> None:
    handler, _ = sequence(httpx.Response(500))
    client, sleeps = make_client(handler, max_attempts=6, backoff_base=1.0, backoff_max=2.5)
    with pytest.raises(ServerError):
        client.request("GET", "/x")
    assert len(sleeps) == 5 and all(0 <= s <= 2.5 for s in sleeps)
    assert sleeps[0] <= 1.0


def test_fatal_statuses_are_not_retried() -> None:
    body = envelope("cursor_expired", "cursor too old")
    handler, seen = sequence(httpx.Response(400, json=body))
    client, sleeps = make_client(handler)
    with pytest.raises(CursorExpiredError):
        client.request("GET", "/contacts", params={"cursor": "abc"})
    assert len(seen) == 1 and sleeps == []


def test_truncated_json_is_retried_then_succeeds() -> None:
    cut = httpx.Response(200, content=b'{"data": [{"id": "con_1"', headers={"content-type":
                                                                            "application/json"})
    handler, seen = sequence(cut, httpx.Response(200, json={"data": [{"id": "con_1"}]}))
    client, _ = make_client(handler)
    assert client.request("GET", "/contacts") == {"data": [{"id": "con_1"}]}
    assert len(seen) == 2


@pytest.mark.parametrize(("body", "passed_on"), [
    (b'{"data": [{"id": "e1", "n": 1.5}], "has_more": false}', True),
    # numbers orjson would round: the exact parse read it, so pyarrow's reader must not
    (b'{"data": [{"id": "e1", "n": 18446744073709551616}], "has_more": false}', False),
    ((b'{"data": [{"id": "e1", "n": 0.1000000000000000055511151231257827}], '
      b'"has_more": false}'), False),
    # NaN is no strict JSON: orjson refuses it and the standard library's parser reads it
    (b'{"data": [{"id": "e1", "n": NaN}], "has_more": false}', False),
])
def test_a_page_brings_its_body_only_when_orjson_read_it_as_it_is(body: bytes,
                                                                  passed_on: bool) -> None:
    handler, _ = sequence(httpx.Response(200, content=body,
                                         headers={"content-type": "application/json"}))
    client, _ = make_client(handler)
    (page,) = list(client.paginate("/analytics/events"))
    assert page.data[0]["id"] == "e1"
    assert page.body == (body if passed_on else None)


def test_html_bodies_are_retried_then_malformed_and_non_objects_fail_at_once() -> None:
    # A maintenance page from a proxy is transient: retried up to the attempt cap, then a clear
    # error that also covers a base_url pointing at a website.
    html = httpx.Response(200, text="<html>docs</html>", headers={"content-type": "text/html"})
    handler, seen = sequence(html)
    client, _ = make_client(handler)
    with pytest.raises(MalformedResponseError, match="text/html.*base_url"):
        client.request("GET", "/contacts")
    assert len(seen) == 6
    handler2, seen2 = sequence(httpx.Response(200, json=[1, 2]))
    client2, _ = make_client(handler2)
    with pytest.raises(MalformedResponseError, match="not an object"):
        client2.request("GET", "/contacts")
    assert len(seen2) == 1


# --- pagination -------------------------------------------------------------------------------

def pages_handler(pages: dict[str | None, dict[str, Any]]) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    return handler, seen


def test_paginate_follows_cursors_and_stops() -> None:
    handler, seen = pages_handler({
        None: {"data": [{"id": 1}], "has_more": True, "next_cursor": "c1", "request_id": "r1",
               "total_entries": 3},
        "c1": {"data": [{"id": 2}], "has_more": True, "next_cursor": "c2", "request_id": "r2"},
        "c2": {"data": [{"id": 3}], "has_more": False, "next_cursor": None, "request_id": "r3"},
    })
    client, _ = make_client(handler)
    pages = list(client.paginate("/waitlists/wl_1/entries", {"status": "waiting", "tag": None},
                                 page_size=2))
    assert [row["id"] for p in pages for row in p.data] == [1, 2, 3]
    assert pages[0] == Page(data=[{"id": 1}], extra={"total_entries": 3}, request_id="r1")
    assert [r.url.params.get("cursor") for r in seen] == [None, "c1", "c2"]
    assert all(r.url.params["limit"] == "2" and r.url.params["status"] == "waiting"
               and "tag" not in r.url.params for r in seen)


def test_paginate_stops_on_null_cursor_even_if_has_more() -> None:
    handler, seen = pages_handler({None: {"data": [{"id": 1}], "has_more": True,
                                          "next_cursor": None}})
    client, _ = make_client(handler)
    assert len(list(client.paginate("/contacts"))) == 1 and len(seen) == 1


def test_paginate_loop_guard_on_repeated_cursor() -> None:
    handler, seen = pages_handler({
        None: {"data": [{"id": 1}], "has_more": True, "next_cursor": "a"},
        "a": {"data": [{"id": 2}], "has_more": True, "next_cursor": "b"},
        "b": {"data": [{"id": 3}], "has_more": True, "next_cursor": "a"},
    })
    client, _ = make_client(handler)
    with pytest.raises(PaginationError, match="already used"):
        list(client.paginate("/contacts"))
    assert len(seen) == 3


def test_paginate_empty_pages_guard() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("cursor"))
        return httpx.Response(200, json={"data": [], "has_more": True,
                                         "next_cursor": f"c{len(seen)}"})

    client, _ = make_client(handler)
    with pytest.raises(PaginationError, match="51 empty pages"):
        list(client.paginate("/contacts"))
    assert len(seen) == 51


def test_paginate_validates_page_shape() -> None:
    for bad in ({"has_more": False}, {"data": {"id": 1}}, {"data": [1, 2]},
                {"data": [], "has_more": "false", "next_cursor": "c"},
                {"data": [], "has_more": True, "next_cursor": 42}):
        handler, _ = sequence(httpx.Response(200, json=bad))
        client, _ = make_client(handler)
        with pytest.raises(MalformedResponseError, match="/contacts"):
            list(client.paginate("/contacts"))


def test_paginate_propagates_cursor_expired() -> None:
    first = httpx.Response(200, json={"data": [{"id": 1}], "has_more": True, "next_cursor": "x"})
    handler, _ = sequence(first, httpx.Response(400, json=envelope("cursor_expired")))
    client, _ = make_client(handler)
    walk: Iterator[Page] = client.paginate("/contacts")
    assert next(walk).data == [{"id": 1}]
    with pytest.raises(CursorExpiredError, match="restart"):
        next(walk)


# --- secrets and messages ---------------------------------------------------------------------

def assert_no_key(err: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert KEY not in str(err) and KEY not in repr(err)
    assert KEY not in repr(vars(err)) and KEY not in caplog.text


def test_401_message_has_fix_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echoed = envelope("unauthorized", f"Invalid key Bearer {KEY} for project")
    handler, _ = sequence(httpx.Response(401, json=echoed))
    client, _ = make_client(handler)
    with pytest.raises(AuthenticationError) as info:
        client.request("GET", "/contacts", params={"limit": 10})
    text = str(info.value)
    assert "SOURCES__GROWTHOS__API_KEY" in text and "sources.growthos.api_key" in text
    assert "code=unauthorized" in text and "request_id=req_abc" in text
    assert "GET /contacts" in caplog.text
    assert_no_key(info.value, caplog)
    assert KEY not in repr(client)


def test_403_names_scope_path_and_fix(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    details = [{"required_scope": "events:read", "granted_scopes": ["contacts:read"]}]
    handler, _ = sequence(httpx.Response(403, json=envelope("insufficient_scope", "no", details)))
    client, _ = make_client(handler)
    with pytest.raises(ScopeError) as info:
        client.request("GET", "/analytics/events")
    err = info.value
    assert err.required_scope == "events:read" and err.granted_scopes == ["contacts:read"]
    assert err.path == "/analytics/events"
    assert ("the API key lacks scope events:read needed for GET /analytics/events: add the scope "
            "to the key, or leave the table out (--resources)") in str(err)
    assert_no_key(err, caplog)


def test_connection_error_messages_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    handler, _ = sequence(httpx.ConnectError(f"proxy said: Authorization: Bearer {KEY}"))
    client, _ = make_client(handler, max_attempts=2)
    with pytest.raises(ConnectionFailedError) as info:
        client.request("GET", "/contacts")
    assert_no_key(info.value, caplog)


def test_echoed_custom_key_is_scrubbed_from_any_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    odd_key = "customKEY-4f9a8b7c6d5e"
    body = envelope("invalid_parameter", f"header was {odd_key}", [{"echo": odd_key}])
    client = GrowthOSClient(BASE, odd_key, transport=httpx.MockTransport(
        lambda request: httpx.Response(400, json=body)))
    with pytest.raises(ApiError) as info:
        client.request("GET", "/contacts")
    assert "invalid_parameter" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(vars(info.value)), caplog.text):
        assert odd_key not in text


def test_write_key_gets_a_hint_on_401() -> None:
    client = GrowthOSClient(BASE, "gos_wk_abc123", transport=httpx.MockTransport(
        lambda request: httpx.Response(401, json=envelope("unauthorized"))))
    with pytest.raises(AuthenticationError, match="gos_sk_ secret key") as info:
        client.request("GET", "/contacts")
    assert "gos_wk_abc123" not in str(info.value)


def test_writes_are_retried_only_when_safe() -> None:
    handler, seen = sequence(httpx.Response(500), OK)
    client, _ = make_client(handler)
    with pytest.raises(ServerError):
        client.request("POST", "/contacts/con_1/merge", json={"source_contact_id": "con_2"})
    assert len(seen) == 1
    handler, seen = sequence(httpx.Response(500), OK)
    client, _ = make_client(handler)
    client.request("POST", "/analytics/query", json={"type": "event_count"}, idempotent=True)
    assert len(seen) == 2 and seen[0].method == "POST"


def test_key_validation() -> None:
    for bad in ("", "   ", None):
        with pytest.raises(ConfigurationError, match="SOURCES__GROWTHOS__API_KEY"):
            GrowthOSClient(BASE, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as info:
        GrowthOSClient(BASE, "gos_sk_ab cd")
    assert "gos_sk_ab" not in str(info.value)
    handler, _ = sequence(OK)
    client, _ = make_client(handler)
    with pytest.raises(ConfigurationError, match="query parameter"):
        client.request("GET", "/contacts", params={"api_key": KEY})


# --- base_url, origin, redirects --------------------------------------------------------------

@pytest.mark.parametrize("url", ["not a url", "api.growthos.io/v1", "ftp://api.test/v1",
                                 "http://api.growthos.io/v1", "http://10.0.0.5:8000/v1",
                                 "https://user:pw@api.test/v1", "https:///v1"])
def test_base_url_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url") as info:
        GrowthOSClient(url, KEY)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1",
                                 "http://[::1]:8000/v1", "http://127.0.1.1/v1",
                                 "https://api.growthos.io/v1/"])
def test_base_url_accepted(url: str) -> None:
    with GrowthOSClient(url, KEY) as client:
        assert client.base_url == url.rstrip("/") and repr(client).startswith("GrowthOSClient(")


def test_authorization_only_to_configured_host() -> None:
    handler, seen = pages_handler({
        None: {"data": [{"id": 1}], "has_more": True, "next_cursor": "https://evil.test/steal"},
        "https://evil.test/steal": {"data": [], "has_more": False, "next_cursor": None},
    })
    client, _ = make_client(handler)
    assert len(list(client.paginate("/contacts"))) == 2
    assert [r.url.host for r in seen] == ["api.test", "api.test"]
    assert seen[1].url.path == "/v1/contacts"
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in seen)
    with pytest.raises(ConfigurationError, match="evil.test"):
        client.request("GET", "https://evil.test/v1/contacts")
    client.request("GET", "https://api.test/v1/contacts")
    assert len(seen) == 3 and seen[-1].url.host == "api.test"


def test_redirect_is_not_followed() -> None:
    handler, seen = sequence(httpx.Response(302, headers={"Location": "https://evil.test/v1/x?t=1"}))
    client, _ = make_client(handler)
    with pytest.raises(ApiError, match="evil.test") as info:
        client.request("GET", "/contacts")
    assert len(seen) == 1 and info.value.status == 302 and "t=1" not in str(info.value)


def test_paths_are_joined_under_base_path() -> None:
    handler, seen = sequence(OK)
    client, _ = make_client(handler)
    client.request("GET", f"contacts/{quote_path_segment('con_a/b?c')}/events")
    assert seen[0].url.raw_path == b"/v1/contacts/con_a%2Fb%3Fc/events"
    with pytest.raises(ConfigurationError, match="params"):
        client.request("GET", "/contacts?limit=5")


# --- pacing -----------------------------------------------------------------------------------

def test_rate_limiter_spaces_requests_at_safety_times_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, safety=0.9, clock=clock, wall_clock=clock, sleep=clock.sleep)
    start = clock.now
    times = []
    for _ in range(4):
        limiter.acquire()
        times.append(clock.now - start)
    assert times == pytest.approx([0.0, 1 / 9, 2 / 9, 3 / 9])
    assert limiter.stats().wait_seconds == pytest.approx(3 / 9)


def test_rate_limiter_steps_its_share_down_after_429s_and_back_up_when_calm() -> None:
    """99 % of the plan while the API accepts it; each 429 costs a step of 1 % (never below
    95 %), and every 30 s without one wins a step back: a network that bunches requests more
    than the local server settles lower instead of collecting a 429 (and a pause of every
    walk) each second."""
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, wall_clock=clock, sleep=clock.sleep)
    assert limiter.share == pytest.approx(DEFAULT_SAFETY) == pytest.approx(0.99)
    limiter.acquire()
    before = clock.now
    limiter.acquire()
    assert clock.now - before == pytest.approx(1 / 99)
    for _ in range(8):
        limiter.pause(0.0)
    assert limiter.share == pytest.approx(0.95)  # the floor
    limiter.acquire()
    before = clock.now
    limiter.acquire()
    assert clock.now - before == pytest.approx(1 / 95, rel=1e-6)
    clock.sleep(29.0)
    assert limiter.share == pytest.approx(0.95)
    clock.sleep(1.0)
    assert limiter.share == pytest.approx(0.96)
    clock.sleep(30.0)
    assert limiter.share == pytest.approx(0.97)
    shares = []
    for _ in range(10):
        clock.sleep(30.0)
        shares.append(limiter.share)
    assert shares[:2] == pytest.approx([0.98, 0.99])
    assert max(shares) == pytest.approx(0.99)  # never above the configured safety


def test_the_429s_of_requests_sent_before_the_share_was_lowered_do_not_lower_it_again() -> None:
    """Requests already on their way when a 429 lowers the share answer the same crowded
    window: their 429s extend the pause but cost no further step. A request sent after the
    lowering that still draws a 429 does lower it."""
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, wall_clock=clock, sleep=clock.sleep)
    limiter.acquire()
    in_flight = [limiter.now() for _ in range(4)]  # four requests sent at the same moment
    clock.sleep(0.05)
    for sent in in_flight:
        limiter.pause(0.5, sent)
    assert limiter.share == pytest.approx(0.98) and limiter.stats().pauses == 4
    limiter.acquire()
    late = limiter.now()
    limiter.pause(0.5, late)  # sent after the lowering: a new window was crowded
    assert limiter.share == pytest.approx(0.97)


def test_rate_limiter_learns_limit_from_headers_and_honours_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(safety=0.9, clock=clock, wall_clock=clock, sleep=clock.sleep)
    assert limiter.acquire() == 0.0  # the probe goes at once
    limiter.observe({"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49",
                     "X-RateLimit-Reset": str(int(clock.now) + 1)})
    assert limiter.limit == 50
    limiter.acquire()
    assert limiter.acquire() == pytest.approx(1 / 45)
    limiter.observe({"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                     "X-RateLimit-Reset": str(clock.now + 0.75)})
    assert limiter.acquire() == pytest.approx(0.75)
    limiter.pause(2.0)
    assert limiter.acquire() == pytest.approx(2.0) and limiter.stats().pauses == 1


def test_rate_limiter_without_headers_does_not_pace() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, wall_clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.observe({"Content-Type": "application/json"})
    assert sum(limiter.acquire() for _ in range(100)) == 0.0 and limiter.limit is None


def test_rate_limiter_one_shared_schedule_across_threads() -> None:
    clock = FakeClock()  # frozen: every delay is the caller's slot on the shared schedule
    delays: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            delays.append(seconds)

    limiter = RateLimiter(9, safety=1.0, clock=clock, wall_clock=clock, sleep=record)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(round(d * 9) for d in delays) == list(range(1, 20))
    assert limiter.stats().requests == 20


def test_rate_limiter_holds_callers_until_first_response() -> None:
    limiter = RateLimiter(sleep=lambda s: None)
    for _ in range(DEFAULT_BURST):  # a few probes go at once, within the lowest plan's rate
        limiter.acquire()
    done = threading.Event()

    def second_caller() -> None:
        limiter.acquire()
        done.set()

    waiter = threading.Thread(target=second_caller)
    waiter.start()
    assert not done.wait(0.2)  # still waiting for the probe's answer
    limiter.observe({"X-RateLimit-Limit": "100"})
    assert done.wait(5)
    waiter.join(5)


def test_probes_count_in_their_second_once_the_limit_is_known() -> None:
    clock = FakeClock()  # frozen inside one wall-clock second until someone sleeps
    limiter = RateLimiter(safety=1.0, clock=clock, wall_clock=clock, sleep=clock.sleep)
    for _ in range(DEFAULT_BURST):
        assert limiter.acquire() == 0.0
    limiter.observe({"X-RateLimit-Limit": "10"})
    second = int(clock.now)
    sent = [int(clock.now + limiter.acquire()) for _ in range(10)]
    # the 10 req/s of this second: the probes and 10 - DEFAULT_BURST more, then the next second
    assert sent.count(second) + DEFAULT_BURST == 10 and sent[-1] == second + 1


def test_client_paces_from_response_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(safety=0.9, clock=clock, wall_clock=clock, sleep=clock.sleep)
    handler, _ = sequence(httpx.Response(200, json={"data": []},
                                         headers={"X-RateLimit-Limit": "10"}))
    client, _ = make_client(handler, rate_limiter=limiter)
    for _ in range(4):  # the first is the probe that learns the limit
        client.request("GET", "/contacts")
    assert clock.sleeps == pytest.approx([1 / 9, 1 / 9])
    assert client.stats.requests_sent == 4
    assert client.stats.pacing_wait_seconds == pytest.approx(2 / 9)


def test_all_errors_share_the_base() -> None:
    for cls in (ConfigurationError, AuthenticationError, NotFoundError, CursorExpiredError,
                RateLimitError, ServerError, ConnectionFailedError, MalformedResponseError,
                PaginationError, ApiError, ScopeError):
        assert issubclass(cls, GrowthOSError)
    err = GrowthOSError("something broke: do X", code="c1", request_id="req_1", status=418)
    assert str(err) == "something broke: do X (code=c1, request_id=req_1)"
    assert str(GrowthOSError("plain")) == "plain"


def test_rate_limiter_default_paces_at_99_percent_of_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, wall_clock=clock, sleep=clock.sleep)
    start, sent = clock.now, []
    for _ in range(300):
        limiter.acquire()
        sent.append(clock.now)
    assert clock.now - start == pytest.approx(299 / 99, abs=0.02)
    # Never more than 99 in one of the API's one-second windows.
    assert max(Counter(int(t) for t in sent).values()) <= 99


def rejected_once_at(now: float) -> RateLimiter:
    """A request answered 429 (window ending at 1,000,001, Retry-After 1) at `now`, then 200:
    the rejected request waits its whole Retry-After; returns the limiter for the others."""
    clock = FakeClock(start=now)
    limiter = RateLimiter(clock=clock, wall_clock=clock, sleep=clock.sleep)
    handler, seen = sequence(
        httpx.Response(429, headers={"Retry-After": "1", "X-RateLimit-Limit": "100",
                                     "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": "1000001"},
                       json=envelope("rate_limited")), OK)
    client, sleeps = make_client(handler, rate_limiter=limiter)
    assert client.request("GET", "/contacts")["data"] == []
    assert len(seen) == 2 and sleeps == [1.0]
    assert limiter.stats().pauses == 1
    return limiter


def test_a_429_holds_everyone_until_the_window_resets_and_its_request_for_retry_after() -> None:
    """Retry-After is whole seconds; the quota window may reset sooner. Other threads wait for
    the reset, the rejected request for the full Retry-After."""
    limiter = rejected_once_at(1_000_000.4)
    assert limiter._blocked_until == pytest.approx(1_000_001.0)  # others: until the reset


def test_a_429_whose_window_already_reset_holds_no_one_else() -> None:
    """The API counts a request when it processes it: a 429 for the last instant of a window
    arrives after the next window began. Holding every thread for the Retry-After (a whole
    second) then cost ~90 requests of a Scale key for nothing."""
    limiter = rejected_once_at(1_000_001.02)
    assert limiter._blocked_until <= 1_000_001.02  # the others go on at once


def test_rate_limiter_admits_the_free_plans_whole_rate_per_second() -> None:
    """10 req/s at 99 %: the even spacing puts 10 slots into most seconds; admitting only
    int(9.9) = 9 per wall-clock second cost a tenth of the Free plan's rate."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, wall_clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(100):
        limiter.acquire()
        sent.append(clock.now)
    assert sent[-1] - sent[0] == pytest.approx(99 / 9.9, abs=0.02)
    assert max(Counter(int(t) for t in sent).values()) == 10
