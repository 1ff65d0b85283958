"""The local GrowthOS server against its own contract, on real HTTP.

A bounded schemathesis run feeds every documented operation generated (and deliberately invalid)
requests and validates each answer against the document the server itself serves: status codes,
content types, headers and response schemas. A server that disagrees with its own document is a
bug in one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import yaml
from conftest import truth
from schemathesis.specs.openapi.checks import positive_data_acceptance

from growthos_sim import DEFAULT_KEY, SimServer
from growthos_sim.routing import HANDLERS, load_document

AUTH = {"Authorization": f"Bearer {DEFAULT_KEY}"}
METHODS = ("get", "post", "patch", "put", "delete")


@pytest.fixture(scope="module")
def contract_sim() -> Iterator[SimServer]:
    """A private, small server: the run writes (creates, patches, deletes) through the API."""
    with SimServer(seed=11, contacts=60, events=600) as s:
        yield s


# The document the server serves is the packaged file, byte for byte (asserted below in
# `test_document_is_served_without_auth`). schemathesis needs it at collection time, before any
# fixture runs (its lazy `from_fixture` loader does not work with this pytest), so it is read from
# the package here and every case is sent to the fixture's running server.
schema = schemathesis.openapi.from_file(load_document()[0].decode())
schema.config.update(headers=AUTH)


@schema.parametrize()
@hypothesis.settings(max_examples=15, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_server_conforms_to_its_document(case: Any, contract_sim: SimServer) -> None:
    # `positive_data_acceptance` is the one check left out: it expects any schema-valid request
    # to succeed, but schema-valid random strings are never valid opaque cursors (400
    # invalid_cursor) and never name existing records (404 not_found), both documented answers.
    # Every other check runs, response schema conformance included.
    case.call_and_validate(base_url=contract_sim.base_url, headers=AUTH,
                           excluded_checks=[positive_data_acceptance])


# ---- the document itself ------------------------------------------------------------------

def test_document_is_served_without_auth(sim: SimServer) -> None:
    r = httpx.get(f"{sim.url}/openapi/management.yaml", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/yaml")
    doc = yaml.safe_load(r.content)
    assert doc["openapi"].startswith("3.1")
    assert r.content == sim.document_bytes
    assert "/contacts" in doc["paths"] and "/analytics/events" in doc["paths"]


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def test_every_operation_has_a_handler(sim: SimServer) -> None:
    doc = yaml.safe_load(sim.document_bytes)
    ops = {op["operationId"] for _, _, op in _operations(doc)}
    assert len(ops) >= 60
    assert ops <= set(HANDLERS), f"operations without handler: {sorted(ops - set(HANDLERS))}"
    # ...and no handler implements something the document does not describe.
    assert set(HANDLERS) <= ops, f"undocumented handlers: {sorted(set(HANDLERS) - ops)}"
    # Every operation names its scope, and the router serves each one.
    routed = {r.op_id: r for r in sim.router.routes}
    for method, path, op in _operations(doc):
        assert op["x-required-scope"], op["operationId"]
        r = routed[op["operationId"]]
        assert (r.method, r.template) == (method.upper(), path)
        assert r.scope == op["x-required-scope"]


def _valid_ids(s: SimServer) -> dict[str, str]:
    """One existing record for each kind of path parameter."""
    seg = truth(s, "segments")[0]["id"]
    links = truth(s, "referral_links")
    entries = truth(s, "waitlist_entries")
    keys = truth(s, "api_keys")
    info = httpx.get(f"{s.url}/_sim/info", timeout=30).json()
    return {
        "contacts": truth(s, "contacts")[0]["id"], "segments": seg,
        "referrals/programs": truth(s, "referral_programs")[0]["id"],
        "referrals/links": links[0]["code"], "campaigns": truth(s, "campaigns")[0]["id"],
        "surveys": truth(s, "surveys")[0]["id"], "waitlists": entries[0]["waitlist_id"],
        "entry_id": entries[0]["id"], "webhooks/endpoints": truth(s, "webhook_endpoints")[0]["id"],
        "analytics/funnels": info["funnel_ids"][0], "analytics/cohorts": info["cohort_ids"][0],
        "settings/keys": keys[-1]["id"],
    }


# Bodies that satisfy each write operation's schema (the router validates them before the
# handler runs, and a handler may 404 on ids inside the body).
def _bodies(s: SimServer, ids: dict[str, str]) -> dict[str, Any]:
    contacts = truth(s, "contacts")
    return {
        "updateContact": {"tags": ["x"]},
        "mergeContacts": {"source_contact_id": contacts[1]["id"]},
        "createSegment": {"name": "n", "rules": {"operator": "AND", "conditions": []}},
        "updateSegment": {"name": "n2"},
        "createReferralProgram": {"name": "p", "reward_type": "credit", "reward_amount": 5},
        "updateReferralProgram": {"name": "p2"},
        "createReferralLink": {"program_id": ids["referrals/programs"],
                               "contact_id": contacts[2]["id"], "channel": "email"},
        "createReferralConversion": {"link_code": ids["referrals/links"],
                                     "referred_contact_id": contacts[3]["id"],
                                     "conversion_event": "signup"},
        "createCampaign": {"name": "c", "type": "broadcast"},
        "updateCampaign": {"name": "c2"},
        "testCampaign": {"emails": ["qa@example.com"]},
        "createSurvey": {"name": "s", "type": "nps", "question": "q?"},
        "updateSurvey": {"name": "s2"},
        "createWaitlist": {"name": "w", "slug": "w-contract"},
        "createWaitlistEntry": {"email": "new-entry@example.com"},
        "approveWaitlistEntries": {"count": 1},
        "createWebhookEndpoint": {"url": "https://hooks.example.com/x", "events": ["contact.*"]},
        "updateWebhookEndpoint": {"description": "d"},
        "queryAnalytics": {"type": "event_count", "from": "2026-05-01", "to": "2026-05-31"},
        "updateSettings": {"name": "Acme"},
        "createApiKey": {"name": "k", "scopes": ["contacts:read"]},
    }


def test_every_documented_path_answers_for_valid_ids(make_sim: Any) -> None:
    s = make_sim(contacts=60, events=600)
    doc = yaml.safe_load(s.document_bytes)
    ids = _valid_ids(s)
    bodies = _bodies(s, ids)
    schemas = doc["components"]["schemas"]
    answered: dict[str, int] = {}
    with httpx.Client(base_url=s.base_url, headers=AUTH, timeout=30) as c:
        # Deletes last, so they do not remove what other operations point at.
        for method, path, op in sorted(_operations(doc), key=lambda t: t[0] == "delete"):
            url = path
            for prefix, value in ids.items():
                url = url.replace(f"/{prefix}/{{id}}", f"/{prefix}/{value}")
                url = url.replace(f"/{prefix}/{{code}}", f"/{prefix}/{value}")
            url = url.replace("{entry_id}", ids["entry_id"])
            assert "{" not in url, url
            params = {"program_id": ids["referrals/programs"]} if "leaderboard" in path else None
            body = bodies.get(op["operationId"])
            rb = op.get("requestBody")
            if rb is not None and body is None:
                ref = rb["content"]["application/json"]["schema"].get("$ref", "")
                assert not schemas.get(ref.rsplit("/", 1)[-1], {}).get("required"), \
                    f"{op['operationId']} needs a body in this test"
                body = {}
            r = c.request(method.upper(), url, params=params, json=body)
            answered[op["operationId"]] = r.status_code
            assert r.status_code != 404, (method, url, r.text)
            assert r.status_code < 300, (method, url, r.status_code, r.text)
            assert str(r.status_code) in op["responses"], (method, path, r.status_code)
    assert len(answered) == len(list(_operations(doc)))


# ---- HTTP-level contract of the request pipeline (growthos_sim/server.py) ------------------

def test_undeclared_methods_answer_405_with_allow(sim: SimServer) -> None:
    """A method the document does not declare on a path is 405 with `Allow` (RFC 9110), in the
    error envelope, never a 501 HTML page (schemathesis' `unsupported_method` check)."""
    with httpx.Client(base_url=sim.base_url, headers=AUTH, timeout=30) as c:
        for method, path, allow in (("PUT", "/contacts", {"GET"}),
                                    ("TRACE", "/contacts", {"GET"}),
                                    ("QUERY", "/segments", {"GET", "POST"}),
                                    ("POST", "/analytics/overview", {"GET"})):
            r = c.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
            assert {m.strip() for m in r.headers.get("Allow", "").split(",")} == allow
            assert r.json()["error"]["code"] == "method_not_allowed"
        r = c.request("OPTIONS", "/contacts")
        assert r.status_code < 500, r.status_code
        assert {m.strip() for m in r.headers.get("Allow", "").split(",")} >= {"GET"}


def test_blank_query_values_are_rejected_not_ignored(sim: SimServer) -> None:
    """`?limit=` or `?to=` are invalid values (the document types them as an integer and a
    date-time), not absent parameters: a client sending them has a bug it should hear about."""
    with httpx.Client(base_url=sim.base_url, headers=AUTH, timeout=30) as c:
        for path, param in (("/contacts", "limit"), ("/contacts", "created_before"),
                            ("/analytics/events", "to"), ("/contacts", "cursor")):
            r = c.get(f"{path}?{param}=")
            assert r.status_code == 400, (path, param, r.status_code)
            assert r.json()["error"]["code"] in ("invalid_parameter", "invalid_cursor")


def test_chunked_request_body_is_read(make_sim: Any) -> None:
    """HTTP/1.1 clients may send a body with `Transfer-Encoding: chunked` (no Content-Length)."""
    s = make_sim(contacts=50, events=500)
    body = b'{"name": "chunked", "rules": {"operator": "AND", "conditions": []}}'
    with httpx.Client(base_url=s.base_url, headers=AUTH, timeout=30) as c:
        r = c.post("/segments", content=iter([body[:20], body[20:]]),
                   headers={"Content-Type": "application/json"})
        assert r.request.headers["Transfer-Encoding"] == "chunked"
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "chunked"


def test_malformed_content_length_is_answered_400(sim: SimServer) -> None:
    """A broken request still gets an answer in the envelope, never a silently closed socket."""
    import socket

    with socket.create_connection((sim.host, sim.port), timeout=10) as so:
        so.sendall(b"POST /v1/segments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                   + DEFAULT_KEY.encode() + b"\r\nContent-Length: abc\r\n\r\n{}")
        head = so.recv(65536)
    assert head.startswith(b"HTTP/1.1 400 "), head[:100]
