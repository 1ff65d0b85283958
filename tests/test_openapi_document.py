"""The OpenAPI document of the GrowthOS Management API: growthos_sim/openapi/management.yaml.

Checks that it is a valid OpenAPI 3.1 document, that it covers every endpoint of the public
reference (docs: shared reference "growthos-management-api.md") with the right scope, and that
the conventions the simulator and the connector rely on (error envelope, paging, rate-limit
headers) are written down.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

# (method, path, scope) of every endpoint in the reference's tables; paths without /v1.
EXPECTED: list[tuple[str, str, str]] = [
    # Contacts
    ("get", "/contacts", "contacts:read"),
    ("get", "/contacts/{id}", "contacts:read"),
    ("patch", "/contacts/{id}", "contacts:write"),
    ("delete", "/contacts/{id}", "contacts:write"),
    ("post", "/contacts/{id}/merge", "contacts:write"),
    ("get", "/contacts/{id}/events", "events:read"),
    ("get", "/contacts/{id}/segments", "contacts:read"),
    # Segments
    ("post", "/segments", "segments:write"),
    ("get", "/segments", "segments:read"),
    ("get", "/segments/{id}", "segments:read"),
    ("patch", "/segments/{id}", "segments:write"),
    ("delete", "/segments/{id}", "segments:write"),
    ("get", "/segments/{id}/contacts", "segments:read"),
    ("post", "/segments/{id}/estimate", "segments:read"),
    # Referrals
    ("post", "/referrals/programs", "referrals:write"),
    ("get", "/referrals/programs", "referrals:read"),
    ("get", "/referrals/programs/{id}", "referrals:read"),
    ("patch", "/referrals/programs/{id}", "referrals:write"),
    ("get", "/referrals/programs/{id}/links", "referrals:read"),
    ("post", "/referrals/links", "referrals:write"),
    ("get", "/referrals/links/{code}", "referrals:read"),
    ("get", "/referrals/links/{code}/conversions", "referrals:read"),
    ("post", "/referrals/conversions", "referrals:write"),
    ("get", "/referrals/leaderboard", "referrals:read"),
    # Campaigns
    ("post", "/campaigns", "campaigns:write"),
    ("get", "/campaigns", "campaigns:read"),
    ("get", "/campaigns/{id}", "campaigns:read"),
    ("patch", "/campaigns/{id}", "campaigns:write"),
    ("post", "/campaigns/{id}/activate", "campaigns:write"),
    ("post", "/campaigns/{id}/pause", "campaigns:write"),
    ("post", "/campaigns/{id}/test", "campaigns:write"),
    ("get", "/campaigns/{id}/stats", "campaigns:read"),
    # Surveys
    ("post", "/surveys", "surveys:write"),
    ("get", "/surveys", "surveys:read"),
    ("get", "/surveys/{id}", "surveys:read"),
    ("patch", "/surveys/{id}", "surveys:write"),
    ("post", "/surveys/{id}/activate", "surveys:write"),
    ("get", "/surveys/{id}/responses", "surveys:read"),
    ("get", "/surveys/{id}/stats", "surveys:read"),
    # Waitlists
    ("post", "/waitlists", "waitlists:write"),
    ("get", "/waitlists/{id}", "waitlists:read"),
    ("get", "/waitlists/{id}/entries", "waitlists:read"),
    ("post", "/waitlists/{id}/entries", "waitlists:write"),
    ("post", "/waitlists/{id}/entries/{entry_id}/approve", "waitlists:write"),
    ("post", "/waitlists/{id}/entries/approve-batch", "waitlists:write"),
    # Webhooks
    ("post", "/webhooks/endpoints", "webhooks:write"),
    ("get", "/webhooks/endpoints", "webhooks:read"),
    ("patch", "/webhooks/endpoints/{id}", "webhooks:write"),
    ("delete", "/webhooks/endpoints/{id}", "webhooks:write"),
    ("get", "/webhooks/endpoints/{id}/logs", "webhooks:read"),
    ("post", "/webhooks/endpoints/{id}/test", "webhooks:write"),
    # Analytics (the event stream needs events:read, the rest analytics:read)
    ("post", "/analytics/query", "analytics:read"),
    ("get", "/analytics/overview", "analytics:read"),
    ("get", "/analytics/events", "events:read"),
    ("get", "/analytics/funnels/{id}", "analytics:read"),
    ("get", "/analytics/cohorts/{id}", "analytics:read"),
    # Settings
    ("get", "/settings", "settings:read"),
    ("patch", "/settings", "settings:write"),
    ("get", "/settings/keys", "settings:read"),
    ("post", "/settings/keys", "settings:write"),
    ("delete", "/settings/keys/{id}", "settings:write"),
]

# Scope family of each path's first segment (the tag tables of the public docs).
FAMILY = {
    "contacts": "contacts",
    "segments": "segments",
    "referrals": "referrals",
    "campaigns": "campaigns",
    "surveys": "surveys",
    "waitlists": "waitlists",
    "webhooks": "webhooks",
    "analytics": "analytics",
    "settings": "settings",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
RATE_LIMIT_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def _load() -> dict[str, Any]:
    text = (importlib.resources.files("growthos_sim") / "openapi" / "management.yaml").read_text(
        encoding="utf-8"
    )
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _load()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # detects 3.1 from the document
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_info_and_servers(doc: dict[str, Any]) -> None:
    info = doc["info"]
    assert info["title"] == "GrowthOS Management API"
    assert str(info["version"]) == "1.0.0"
    description = info["description"]
    assert "Choices where the docs are silent or contradict themselves" in description
    for fact in (
        "con_",
        "50",
        "external_id",
        "cursor_expired",
        "events:read",
        "analytics:read",
        "program_id",
        "inclusive",
        "exclusive",
        "newest first",
    ):
        assert fact in description, fact
    urls = {s["url"]: s.get("description", "") for s in doc["servers"]}
    assert "https://api.growthos.io/v1" in urls
    assert "https://api-staging.growthos.io/v1" in urls
    assert urls.get("http://127.0.0.1:8787/v1") == "local GrowthOS simulator"
    assert doc["security"] == [{"BearerAuth": []}]
    scheme = doc["components"]["securitySchemes"]["BearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "gos_sk_*"


def test_every_reference_endpoint_is_present_and_nothing_else(doc: dict[str, Any]) -> None:
    present = {(method, path) for method, path, _ in _operations(doc)}
    expected = {(method, path) for method, path, _ in EXPECTED}
    assert len(expected) == len(EXPECTED), "duplicate entries in EXPECTED"
    assert expected - present == set(), "missing operations"
    assert present - expected == set(), "operations not in the reference"
    assert not any(path.startswith("/v1") for path in doc["paths"]), "paths carry no /v1 prefix"
    assert "/openapi/management.yaml" not in doc["paths"]


@pytest.mark.parametrize(("method", "path", "scope"), EXPECTED)
def test_operation_scope_security_and_errors(
    doc: dict[str, Any], method: str, path: str, scope: str
) -> None:
    op = doc["paths"][path][method]
    assert op.get("x-required-scope") == scope
    family = FAMILY[path.split("/")[1]]
    if scope != "events:read":  # events:read is the reads-of-events exception of two families
        assert scope.split(":")[0] == family
    else:
        assert path in ("/analytics/events", "/contacts/{id}/events")
    assert scope in op.get("description", "")
    assert op.get("security") == [{"BearerAuth": []}]
    assert op.get("tags") and op["tags"][0] in {t["name"] for t in doc["tags"]}

    responses = op["responses"]
    for status in ("400", "401", "403", "429", "500"):
        assert status in responses, f"{method} {path} lacks {status}"
    if "{" in path:
        assert "404" in responses
    if method in ("post", "patch") and scope.endswith(":write"):
        assert "422" in responses
    successes = [s for s in responses if s.startswith("2")]
    assert len(successes) == 1
    if method == "delete":
        assert successes == ["204"]
        assert "content" not in _resolve(doc, responses["204"])

    # Rate-limit headers on every response, success or error; Retry-After on 429.
    for status, response in responses.items():
        headers = _resolve(doc, response).get("headers", {})
        assert RATE_LIMIT_HEADERS <= set(headers), f"{method} {path} {status}"
    assert "Retry-After" in _resolve(doc, responses["429"])["headers"]

    # Path parameters are declared with the reference's names.
    declared = [_resolve(doc, p) for p in op.get("parameters", [])]
    names = {p["name"] for p in declared if p["in"] == "path"}
    expected_names = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    assert names == expected_names


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert all(ids)
    assert len(ids) == len(set(ids))


def test_error_schema_is_the_envelope(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert error["type"] == "object"
    assert set(error["required"]) == {"error", "request_id"}
    inner = error["properties"]["error"]
    assert inner["type"] == "object"
    assert set(inner["required"]) == {"code", "message", "details"}
    assert inner["properties"]["code"]["type"] == "string"
    assert inner["properties"]["message"]["type"] == "string"
    details = inner["properties"]["details"]
    assert details["type"] == "array" and details["items"]["type"] == "object"
    request_id = _resolve(doc, error["properties"]["request_id"])
    assert request_id["type"] == "string"

    responses = doc["components"]["responses"]
    for name in (
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "Conflict",
        "ValidationError",
        "RateLimited",
        "InternalError",
    ):
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    forbidden = responses["Forbidden"]["content"]["application/json"]["example"]
    assert forbidden["error"]["code"] == "insufficient_scope"
    assert {"required_scope", "granted_scopes"} <= set(forbidden["error"]["details"][0])


def test_paging_parameters_and_pages(doc: dict[str, Any]) -> None:
    params = doc["components"]["parameters"]
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 50,
    }
    assert params["cursor"]["in"] == "query"
    schemas = doc["components"]["schemas"]
    pages = [name for name in schemas if name.endswith("List") or name == "LeaderboardPage"]
    assert "ContactList" in pages and "EventList" in pages
    for name in pages:
        page = schemas[name]
        assert {"data", "has_more", "next_cursor", "request_id"} <= set(page["required"]), name
        assert page["properties"]["next_cursor"]["type"] == ["string", "null"]
    assert "total_entries" in schemas["WaitlistEntryList"]["required"]
    assert "program_id" in schemas["LeaderboardPage"]["required"]
    # Every list operation takes cursor and limit.
    for method, path, op in _operations(doc):
        ok = op["responses"].get("200", {})
        ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        if ref.split("/")[-1] in pages:
            refs = {p.get("$ref") for p in op.get("parameters", [])}
            assert {"#/components/parameters/cursor", "#/components/parameters/limit"} <= refs


def test_resource_schemas_require_every_field(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name in (
        "Contact",
        "Segment",
        "ReferralProgram",
        "ReferralLink",
        "ReferralConversion",
        "Campaign",
        "Survey",
        "SurveyResponse",
        "Waitlist",
        "WaitlistEntry",
        "WebhookEndpoint",
        "WebhookDelivery",
        "Event",
        "ProjectSettings",
        "ApiKey",
        "Funnel",
        "Cohort",
        "AnalyticsOverview",
        "CampaignStats",
        "SurveyStats",
    ):
        schema = schemas[name]
        assert set(schema["required"]) == set(schema["properties"]), name
        assert schema.get("additionalProperties") is True, name
    contact = schemas["Contact"]["properties"]
    assert contact["external_id"]["type"] == ["string", "null"]
    assert contact["traits"] == {"type": "object", "description": "Free-form attributes."}

    def walk(node: Any) -> None:  # 3.1 style: type [X, "null"], never `nullable: true`
        if isinstance(node, dict):
            assert "nullable" not in node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc["components"]["schemas"])
