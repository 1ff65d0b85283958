"""The connector end to end: real HTTP to the local server, real dlt pipelines, real DuckDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import control, truth
from warehouse import CHECKS, Warehouse, assert_equals_truth

INCREMENTAL = ("contacts", "segments", "referral_programs", "referral_links", "campaigns",
               "surveys", "survey_responses", "webhook_endpoints", "webhook_deliveries", "events")


# The exactness suite runs against both shapes the API may speak (growthos_sim/dialect.py):
# our document's and the public docs'. The connector takes no setting for it.
DIALECTS = ("document", "docs")


@pytest.fixture(params=DIALECTS)
def synced(make_sim, tmp_path: Path, request: pytest.FixtureRequest) -> Warehouse:
    sim = make_sim(contacts=200, events=2000, dialect=request.param)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=tuple(CHECKS))
    return wh


def test_first_sync_equals_truth_for_every_table(synced: Warehouse) -> None:
    counts = {t: assert_equals_truth(synced, t) for t in CHECKS}
    assert counts["contacts"] > 100 and counts["events"] == 2000
    assert all(n > 0 for n in counts.values()), counts


def test_analytics_overview_appends_a_snapshot_per_run(synced: Warehouse) -> None:
    synced.sync(resources=("analytics_overview",))
    want = truth(synced.sim, "analytics_overview")[0]
    got = synced.query("SELECT total_contacts, active_campaigns, events_today FROM "
                       "{ds}.analytics_overview")
    assert got == [(want["total_contacts"], want["active_campaigns"], want["events_today"])]
    synced.sync(resources=("analytics_overview",))
    snapshots = synced.query("SELECT COUNT(DISTINCT synced_at) FROM {ds}.analytics_overview")
    assert snapshots[0][0] == 2


def test_second_run_without_changes_loads_no_new_rows(synced: Warehouse) -> None:
    before = {t: synced.query(f"SELECT COUNT(*) FROM {{ds}}.{t}")[0][0] for t in CHECKS}
    result = synced.sync(resources=tuple(CHECKS))
    for t in INCREMENTAL:
        assert result.rows.get(t, 0) == 0, f"{t} reloaded {result.rows.get(t)} rows"
    after = {t: synced.query(f"SELECT COUNT(*) FROM {{ds}}.{t}")[0][0] for t in CHECKS}
    snapshot_tables = {"analytics_overview"}
    assert {t: n for t, n in after.items() if t not in snapshot_tables} == \
        {t: n for t, n in before.items() if t not in snapshot_tables}


def test_after_mutation_loads_exactly_created_and_updated(synced: Warehouse) -> None:
    did = control(synced.sim, "POST", "mutate", json={
        "advance": "1d", "contacts": {"create": 7, "update": 11},
        "events": {"create": 300}, "survey_responses": {"create": 9}}).json()
    changed = set(did["contacts"]["create"]) | set(did["contacts"]["update"])
    result = synced.sync(resources=tuple(CHECKS))
    assert result.rows["contacts"] == len(changed)
    assert result.rows["events"] == 300
    assert result.rows["survey_responses"] == len(did["survey_responses"]["create"])
    for t in CHECKS:
        assert_equals_truth(synced, t)


def test_new_parent_children_load_in_full(synced: Warehouse) -> None:
    """A survey created (with backdated responses) after other surveys were read up to now:
    its responses are older than their marks but must all load (marks are per parent)."""
    did = control(synced.sim, "POST", "mutate",
                  json={"advance": "2h", "surveys": {"create": 1}}).json()
    new_survey = did["surveys"]["create"][0]
    synced.sync(resources=("surveys", "survey_responses"))
    want = {r["id"] for r in truth(synced.sim, "survey_responses") if r["survey_id"] == new_survey}
    got = {r[0] for r in synced.query(
        f"SELECT id FROM {{ds}}.survey_responses WHERE survey_id = '{new_survey}'")}
    assert want and got == want
    assert_equals_truth(synced, "survey_responses")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_deletes_are_marked_then_removed(make_sim, tmp_path: Path, dialect: str) -> None:
    sim = make_sim(contacts=120, events=300, dialect=dialect)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "webhook_endpoints", "webhook_deliveries"))
    did = control(sim, "POST", "mutate", json={
        "advance": "1h", "contacts": {"delete": 3}, "webhook_endpoints": {"delete": 1}}).json()
    gone = set(did["contacts"]["delete"])
    result = wh.sync(resources=("contacts", "webhook_endpoints", "webhook_deliveries"))
    assert result.deletes_applied["contacts"] == len(gone)
    marked = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert marked == gone
    for t in ("contacts", "webhook_endpoints", "webhook_deliveries"):
        assert_equals_truth(wh, t)
    # A later run with deletes="remove" erases what vanishes next, nested rows included.
    did = control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"delete": 2}}).json()
    erased = set(did["contacts"]["delete"])
    wh.sync(resources=("contacts",), deletes="remove")
    ids = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts")}
    assert not erased & ids and gone <= ids
    orphans = wh.query("SELECT COUNT(*) FROM {ds}.contacts__tags t WHERE t._dlt_root_id NOT IN "
                       "(SELECT _dlt_id FROM {ds}.contacts)")
    assert orphans[0][0] == 0
    assert_equals_truth(wh, "contacts")


def test_start_and_end_date_bound_what_is_loaded(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=150, events=1500)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events", "contacts"), start_date="2025-06-01",
            end_date="2026-01-01")
    ts = wh.query("SELECT MIN(timestamp), MAX(timestamp), COUNT(*) FROM {ds}.events")[0]
    want = [e for e in truth(sim, "events") if "2025-06-01" <= e["timestamp"] < "2026-01-01"]
    assert ts[2] == len(want) > 0
    assert ts[0].isoformat() >= "2025-06-01" and ts[1].isoformat() < "2026-01-01"
    upd = wh.query("SELECT MIN(updated_at), MAX(updated_at) FROM {ds}.contacts")[0]
    assert upd[0].isoformat() >= "2025-06-01" and upd[1].isoformat() < "2026-01-01"


def test_resource_selection_loads_only_those_tables(make_sim, tmp_path: Path) -> None:
    wh = Warehouse(tmp_path, make_sim(contacts=50, events=200))
    result = wh.sync(resources=("surveys", "api_keys"))
    loaded = {t for t in result.rows if "__" not in t and not t.startswith("_")}
    assert loaded == {"surveys", "api_keys"}
    assert "contacts" not in wh.tables()


def test_contact_profiles_are_opt_in_and_follow_changes(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=40, events=100)
    wh = Warehouse(tmp_path, sim)
    assert "contact_profiles" not in wh.sync().rows
    first = wh.sync(resources=("contact_profiles",))
    assert first.rows["contact_profiles"] == len(truth(sim, "contacts"))
    did = control(sim, "POST", "mutate", json={"advance": "1h",
                                                "contacts": {"update": 3}}).json()
    again = wh.sync(resources=("contact_profiles",))
    assert again.rows["contact_profiles"] == len(set(did["contacts"]["update"]))
    cols = {r[0] for r in wh.query("SELECT column_name FROM information_schema.columns WHERE "
                                   "table_schema='{ds}' AND table_name='contact_profiles'")}
    assert {"scores__engagement", "referral_stats__conversions"} <= cols


def test_memberships_as_arrow_tables_keep_the_row_path_columns(synced: Warehouse) -> None:
    """segment_memberships leaves the reader as arrow tables (dlt's row normalizer skipped):
    the table keeps `_dlt_id` (one distinct id per row, as the normalizer gives) and equals
    the truth after members are added and contacts (members among them) deleted."""
    control(synced.sim, "POST", "mutate", json={
        "advance": "1h", "segment_memberships": {"create": 5}, "contacts": {"delete": 2}})
    synced.sync(resources=("contacts", "segments", "segment_memberships"))
    assert {"_dlt_id", "_dlt_load_id", "segment_id", "contact_id"} <= \
        synced.columns("segment_memberships")
    n, ids, nulls = synced.query("SELECT COUNT(*), COUNT(DISTINCT _dlt_id), "
                                 "COUNT(*) - COUNT(_dlt_load_id) FROM "
                                 "{ds}.segment_memberships")[0]
    assert n > 0 and ids == n and nulls == 0
    assert assert_equals_truth(synced, "segment_memberships") == n
