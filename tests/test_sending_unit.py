"""Unit tests of sending.py: requests go straight to the transport with what httpx.Client
would have sent, and the client's path (which honours proxy variables) is kept for
environments that name a proxy."""

from __future__ import annotations

import ssl

import httpx
import pytest

from growthos_source.http import GrowthOSClient
from growthos_source.http.sending import Sender

KEY = "gos_sk_live_S3cretValue0123456789"


def test_the_direct_path_sends_the_clients_headers_params_and_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "has_more": False, "next_cursor": None})

    with GrowthOSClient("https://api.test/v1", KEY, timeout=7.5,
                        transport=httpx.MockTransport(handler)) as client:
        body = client.request("GET", "/contacts", params={"limit": 5, "skip": None})
    assert body["has_more"] is False
    (req,) = seen
    assert str(req.url) == "https://api.test/v1/contacts?limit=5"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["host"] == "api.test"
    assert req.headers["accept"] == "application/json"
    assert req.headers["accept-encoding"] == "gzip, deflate"
    assert req.headers["user-agent"].startswith("growthos-dlt/")
    assert req.extensions["timeout"] == httpx.Timeout(7.5).as_dict()


def test_a_gzip_body_is_decoded() -> None:
    import gzip

    raw = gzip.compress(b'{"data": [{"id": "c1"}], "has_more": false, "next_cursor": null}')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=raw, headers={"content-encoding": "gzip",
                                                         "content-type": "application/json"})

    with GrowthOSClient("https://api.test/v1", KEY,
                        transport=httpx.MockTransport(handler)) as client:
        (page,) = list(client.paginate("/contacts"))
    assert page.data == [{"id": "c1"}]


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_takes_the_clients_path(
        var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = Sender({}, httpx.Timeout(5), 4)
    assert direct._client is None and direct._direct is not None
    direct.close()
    monkeypatch.setenv(var, "http://127.0.0.1:9")
    proxied = Sender({}, httpx.Timeout(5), 4)
    assert proxied._direct is None and proxied._client is not None
    proxied.close()


def test_one_tls_context_per_process_and_none_for_a_plain_http_api() -> None:
    """Building httpx's TLS context loads the CA bundle (~50 ms a client, a client per dlt
    run): https clients share one, plain-http ones never build it."""
    from growthos_source.http import sending

    sending.tls_context.cache_clear()
    for _ in range(3):
        Sender({}, httpx.Timeout(5), 4, tls=False).close()
    assert sending.tls_context.cache_info().currsize == 0
    a, b = Sender({}, httpx.Timeout(5), 4), Sender({}, httpx.Timeout(5), 4)
    assert sending.tls_context.cache_info().misses == 1
    assert isinstance(sending.tls_context(), ssl.SSLContext)
    a.close()
    b.close()
    with GrowthOSClient("http://127.0.0.1:9/v1", KEY) as client:  # loopback: builds none
        assert client.base_url.startswith("http://")
    assert sending.tls_context.cache_info().misses == 1
