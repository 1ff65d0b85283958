"""The local server's docs dialect (`SimServer(dialect="docs")`, `--dialect docs`): the shapes
the public GrowthOS docs show where they differ from our document, and a connector that loads
the same tables, keys and column names from it with no configuration.

Real HTTP to the local server, real dlt pipelines, real DuckDB files. The exactness suite of
test_source_sync.py and test_reliability_faults.py runs in both dialects too; the tests here are
what only the docs dialect has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from warehouse import CHECKS, Warehouse, assert_equals_truth, norm

from growthos_sim.cli import parse_args
from growthos_sim.dialect import DOCS_PREFIXES
from growthos_sim.ratelimit import RateLimiter

SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TINY = {"contacts": 40, "events": 200}


@pytest.fixture(scope="module")
def docs() -> Any:
    from growthos_sim import SimServer

    with SimServer(seed=7, contacts=60, events=400, dialect="docs") as s:
        yield s


def _first(api: Any, path: str) -> dict[str, Any]:
    r = api.get(path)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


def test_docs_dialect_serves_the_docs_shapes(docs: Any, api: Any) -> None:
    c = api(docs)
    page = c.get("/contacts").json()
    assert "request_id" not in page and len(page["data"]) == 25  # the docs' default page size
    contact = page["data"][0]
    assert contact["id"].startswith("cntct_") and "user_id" in contact
    assert "external_id" not in contact
    assert SECONDS.match(contact["created_at"]) and SECONDS.match(contact["updated_at"])
    profile = c.get(f"/contacts/{contact['id']}").json()
    assert "request_id" not in profile and "user_id" in profile and "scores" in profile

    segment = _first(c, "/segments")
    member = _first(c, f"/segments/{segment['id']}/contacts")
    # "returns paginated contacts": contact objects, not {contact_id, email, added_at}
    assert member["id"].startswith("cntct_") and "contact_id" not in member
    assert {"email", "traits", "tags", "user_id"} <= set(member)

    hook = _first(c, "/webhooks/endpoints")
    delivery = _first(c, f"/webhooks/endpoints/{hook['id']}/logs")
    assert delivery["id"].startswith("wh_log_") and "created_at" not in delivery
    assert {"status", "attempt", "delivered_at", "next_retry_at"} <= set(delivery)

    assert _first(c, "/campaigns")["id"].startswith("cmpgn_")
    survey = _first(c, "/surveys")
    assert survey["id"].startswith("srvy_")
    assert _first(c, "/referrals/programs")["id"].startswith("ref_prog_")
    event = _first(c, "/analytics/events")
    assert SECONDS.match(event["timestamp"]) and event["id"].startswith("evt_")

    # Errors keep their request_id (the docs show it in every error envelope).
    err = c.get("/contacts", params={"limit": 0})
    assert err.status_code == 400 and err.json()["request_id"].startswith("req_")


def test_same_seed_same_data_in_either_dialect(docs: Any, make_sim: Any) -> None:
    """One domain model: the document dialect's truth, with the docs' prefixes and whole
    seconds, is the docs dialect's truth (apart from the fields the docs do not send)."""
    doc = make_sim(seed=7, contacts=60, events=400)

    def as_docs(value: Any) -> Any:
        text = str(value)
        for old, new in DOCS_PREFIXES.items():
            text = text.replace(old, new)
        return re.sub(r"(\d\d:\d\d:\d\d)\.\d{3}Z", r"\1Z", text)

    for table in ("contacts", "events", "survey_responses", "webhook_deliveries"):
        want = [{k: as_docs(v) for k, v in r.items() if k != "created_at"}
                for r in truth(doc, table)]
        got = [{k: str(v) for k, v in r.items() if k != "created_at"} for r in truth(docs, table)]
        assert got == want and got, table


def test_truth_keeps_the_documents_column_names(docs: Any) -> None:
    contact = truth(docs, "contacts")[0]
    assert "external_id" in contact and "user_id" not in contact
    member = truth(docs, "segment_memberships")[0]
    assert set(member) == {"contact_id", "email", "added_at", "segment_id"}
    assert member["added_at"] is None
    delivery = truth(docs, "webhook_deliveries")[0]
    assert delivery["created_at"] is None and SECONDS.match(delivery["delivered_at"] or
                                                            "2026-01-01T00:00:00Z")


def test_rate_limit_window_is_longer_in_the_docs_dialect() -> None:
    """The docs' 429 example says `Retry-After: 12`: windows of 12 s, the plan's rate scaled."""
    limiter = RateLimiter("free", window_s=12)
    answers = [limiter.hit("k") for _ in range(121)]
    assert all(ok for ok, _ in answers[:120]) and not answers[120][0]
    headers = answers[120][1]
    assert headers["X-RateLimit-Limit"] == "120" and 1 <= int(headers["Retry-After"]) <= 12
    assert int(headers["X-RateLimit-Reset"]) % 12 == 0


def test_cli_takes_the_dialect() -> None:
    assert parse_args(["--dialect", "docs"]).dialect == "docs"
    assert parse_args([]).dialect == "document"
    with pytest.raises(SystemExit):
        parse_args(["--dialect", "prism"])


def test_connector_holds_the_same_columns_in_both_dialects(make_sim: Any,
                                                           tmp_path: Path) -> None:
    """Users' SQL never changes with the API's shape: every table has the document dialect's
    columns (and keys) when loaded from the docs dialect, values as the API sent them."""
    tables = ("contacts", "segment_memberships", "webhook_deliveries", "events")
    cols: dict[str, dict[str, set[str]]] = {}
    for dialect in ("document", "docs"):
        sim = make_sim(seed=3, dialect=dialect, **TINY)
        wh = Warehouse(tmp_path / dialect, sim)
        wh.sync(resources=tables)
        cols[dialect] = {t: {r[0] for r in wh.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='{ds}' "
            f"AND table_name='{t}'")} for t in tables}
        for t in tables:
            assert_equals_truth(wh, t)
        if dialect == "docs":
            got = set(wh.rows("contacts", ("id", "external_id")))
            assert got == {(r["id"], r["external_id"]) for r in truth(sim, "contacts")}
            got = set(wh.rows("segment_memberships", ("segment_id", "contact_id", "email")))
            assert got == {(r["segment_id"], r["contact_id"], r["email"])
                           for r in truth(sim, "segment_memberships")}
            fields = ("id", "status", "attempt", "delivered_at", "next_retry_at")
            got = set(wh.rows("webhook_deliveries", fields))
            assert got == {tuple(norm(r[f]) for f in fields)
                           for r in truth(sim, "webhook_deliveries")}
    for t in tables:
        # The docs' contacts bring no extra column; members keep only the member columns.
        assert cols["docs"][t] == cols["document"][t], t


def test_docs_deliveries_load_once_then_only_when_new_or_retried(make_sim: Any,
                                                                tmp_path: Path) -> None:
    """Without created_at the delivery logs are read whole every run, and a record loads only
    when the warehouse lacks it or its status/attempt changed."""
    sim = make_sim(dialect="docs", **TINY)
    wh = Warehouse(tmp_path, sim)
    first = wh.sync(resources=("webhook_endpoints", "webhook_deliveries"))
    assert first.rows["webhook_deliveries"] == len(truth(sim, "webhook_deliveries")) > 0
    assert wh.sync(resources=("webhook_deliveries",)).rows.get("webhook_deliveries", 0) == 0
    did = control(sim, "POST", "mutate", json={"advance": "1h",
                                                "webhook_deliveries": {"create": 6}}).json()
    again = wh.sync(resources=("webhook_deliveries",))
    assert again.rows["webhook_deliveries"] == len(did["webhook_deliveries"]["create"]) == 6
    assert_equals_truth(wh, "webhook_deliveries")


def test_every_table_is_exact_from_the_docs_dialect_with_small_pages(make_sim: Any,
                                                                     tmp_path: Path) -> None:
    """Small pages put cursors in play everywhere (members as contacts across pages, events at
    whole seconds split and resumed)."""
    sim = make_sim(dialect="docs", contacts=80, events=800)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=tuple(CHECKS), page_size=10, events_window_days=30)
    for t in CHECKS:
        assert_equals_truth(wh, t)


def test_docs_dialect_groups_counts_by_a_field_path(docs: Any, api: Any, make_sim: Any) -> None:
    """The docs' example groups by `traits.source`; our document allows only `event`."""
    query = {"type": "event_count", "from": "2026-05-01", "to": "2026-05-31",
             "group_by": "traits.plan"}
    doc = make_sim(contacts=20, events=50)
    assert api(doc).post("/analytics/query", json=query).status_code == 422
    answer = api(docs).post("/analytics/query", json=query).json()
    plans = {str(c["traits"].get("plan")) if c["traits"].get("plan") is not None else "null"
             for c in truth(docs, "contacts")}
    groups = {g for d in answer["data"] for g in d["groups"]}
    assert groups and groups <= plans | {"null"}
    assert answer["total"] == sum(n for d in answer["data"] for n in d["groups"].values())
    by_event = api(docs).post("/analytics/query", json={**query, "group_by": "event"}).json()
    assert by_event["total"] == answer["total"]
    names = {e["event"] for e in truth(docs, "events")
             if "2026-05-01" <= e["timestamp"] < "2026-06"}
    assert {g for d in by_event["data"] for g in d["groups"]} == names
