"""The analytics views reproduce GrowthOS's own numbers, on DuckDB and on PostgreSQL.

One small world per destination: sync, create the views, compare every view with what the API
reports for the same thing; then a simulated day of activity, sync, create the views again
(idempotent) and compare again. The API rounds its figures (NPS to 1 decimal, averages to 3,
rates to 4); the views keep full precision, so the view's value is rounded the API's way
(Python's `round`, as our server does) before it is compared. Lists the API cannot aggregate
(responses per month, entries per status) come from /_sim/truth, the rows the API serves.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import httpx
import pytest
from conftest import control, truth

from growthos_sim import DEFAULT_KEY, SimServer
from growthos_source import growthos, sync
from growthos_source.models import MODEL_NAMES, create_models
from growthos_source.models.catalog import MODELS


def _pipeline(tmp: Path, kind: str, request: pytest.FixtureRequest) -> dlt.Pipeline:
    if kind == "duckdb":
        dest: Any = dlt.destinations.duckdb(str(tmp / "models.duckdb"))
    else:
        dest = dlt.destinations.postgres(credentials=request.getfixturevalue("postgres_url"))
    return dlt.pipeline(pipeline_name=f"models_{kind}", pipelines_dir=str(tmp / "pipelines"),
                        destination=dest, dataset_name="gos")


def _sync(p: dlt.Pipeline, sim: SimServer) -> None:
    info = sim.info()
    # 90-day event windows: a handful per sync instead of ~100 (the views do not care).
    sync(p, growthos(api_key=DEFAULT_KEY, base_url=sim.base_url, max_attempts=4,
                     events_window_days=90,
                     waitlist_ids=info["waitlist_ids"], funnel_ids=info["funnel_ids"],
                     cohort_ids=info["cohort_ids"]))


def _view(p: dlt.Pipeline, name: str) -> list[dict[str, Any]]:
    with p.sql_client() as c, \
            c.execute_query(f"SELECT * FROM {c.make_qualified_table_name(name)}") as cur:
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def _comments(p: dlt.Pipeline, kind: str) -> dict[str, str]:
    """The description stored on each view."""
    sql = ("SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'gos'"
           if kind == "duckdb" else
           "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN "
           "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'gos' AND c.relkind = 'v'")
    with p.sql_client() as c:
        return {r[0]: r[1] for r in c.execute_sql(sql) or ()}


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def check_surveys(p: dlt.Pipeline, sim: SimServer, api: httpx.Client) -> None:
    rows = {r["survey_id"]: r for r in _view(p, "survey_nps")}
    assert set(rows) == {s["id"] for s in truth(sim, "surveys")}
    for sid, row in rows.items():
        stats = api.get(f"/surveys/{sid}/stats").json()
        assert (row["responses"], row["promoters"], row["passives"], row["detractors"]) == (
            stats["total_responses"], stats["breakdown"]["promoters"],
            stats["breakdown"]["passives"], stats["breakdown"]["detractors"]), sid
        assert _r(row["nps"], 1) == stats["nps_score"], sid
        assert _r(row["average_score"], 3) == stats["average_score"], sid
    # Per month: the API has no monthly figure, so the months are rebuilt from its responses.
    want: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for resp in truth(sim, "survey_responses"):
        key = (resp["survey_id"], resp["responded_at"][:7])
        want[key]["responses"] += 1
        want[key][str(resp.get("category"))] += 1
    got = {(r["survey_id"], r["month"].isoformat()[:7]): r for r in _view(p, "survey_nps_monthly")}
    assert set(got) == set(want)
    for key, row in got.items():
        c = want[key]
        assert (row["responses"], row["promoters"], row["detractors"]) == (
            c["responses"], c["promoter"], c["detractor"]), key
        if row["survey_type"] == "nps":
            assert row["nps"] == 100.0 * (c["promoter"] - c["detractor"]) / c["responses"]
    assert sum(r["responses"] for r in got.values()) == sum(r["responses"] for r in rows.values())


def check_campaigns(p: dlt.Pipeline, api: httpx.Client) -> list[dict[str, Any]]:
    rows = _view(p, "campaign_performance")
    assert rows
    for row in rows:
        body = api.get(f"/campaigns/{row['campaign_id']}/stats").json()
        s = body["stats"]
        assert row["status"] == body["status"]
        for name in ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed",
                     "open_rate", "click_rate", "bounce_rate", "unsubscribe_rate"):
            assert row[name] == s[name], (row["campaign_id"], name)
        if s["opened"]:
            assert row["click_to_open_rate"] == s["clicked"] / s["opened"]
    return rows


def check_referrals(p: dlt.Pipeline, sim: SimServer, api: httpx.Client) -> list[dict[str, Any]]:
    rows = _view(p, "referral_funnel")
    assert {r["program_id"] for r in rows} == {t["id"] for t in truth(sim, "referral_programs")}
    clicks: Counter[str] = Counter()
    for link in truth(sim, "referral_links"):
        clicks[link["program_id"]] += link["clicks"]
    for row in rows:
        pid = row["program_id"]
        stats = api.get(f"/referrals/programs/{pid}").json()["stats"]
        assert (row["links"], row["conversions"], row["rewards_issued"]) == (
            stats["links"], stats["conversions"], stats["rewards_issued"]), pid
        assert row["clicks"] == clicks[pid]
        board = api.get("/referrals/leaderboard", params={"program_id": pid, "limit": 3}).json()
        assert list(row["top_referrers"]) == [b["contact_id"] for b in board["data"]], pid
    return rows


def _query(api: httpx.Client, qtype: str, start: dt.date, end: dt.date) -> dict[tuple[str, str], int]:
    """POST /analytics/query by day and event over [start, end], in chunks of 366 days."""
    out: dict[tuple[str, str], int] = {}
    a = start
    while a <= end:
        b = min(end, a + dt.timedelta(days=365))
        body = api.post("/analytics/query", json={"type": qtype, "interval": "day",
                                                  "from": a.isoformat(), "to": b.isoformat(),
                                                  "group_by": "event"}).json()
        for bucket in body["data"]:
            for event, n in bucket["groups"].items():
                out[(bucket["date"], event)] = n
        a = b + dt.timedelta(days=1)
    return out


def check_events(p: dlt.Pipeline, api: httpx.Client) -> list[dict[str, Any]]:
    rows = _view(p, "daily_events")
    days = [r["day"] for r in rows]
    counts = _query(api, "event_count", min(days), max(days))
    uniques = _query(api, "unique_contacts", min(days), max(days))
    assert {(r["day"].isoformat(), r["event"]): r["events"] for r in rows} == counts
    assert {(r["day"].isoformat(), r["event"]): r["unique_contacts"] for r in rows} == uniques
    loaded = {(r["date"], r["event"]): r["count"] for r in _view(p, "daily_event_counts")}
    assert loaded == counts
    return rows


def check_waitlists(p: dlt.Pipeline, sim: SimServer, api: httpx.Client) -> None:
    rows = _view(p, "waitlist_funnel")
    assert {r["waitlist_id"] for r in rows} == set(sim.info()["waitlist_ids"])
    entries = truth(sim, "waitlist_entries")
    for row in rows:
        wid = row["waitlist_id"]
        assert row["entries"] == api.get(f"/waitlists/{wid}").json()["total_entries"]
        mine = [e for e in entries if e["waitlist_id"] == wid]
        status = Counter(e["status"] for e in mine)
        referring = sum(1 for e in mine if e["referral_count"] > 0)
        assert (row["approved"], row["waiting"], row["referrals"], row["referrers"]) == (
            status["approved"], status["waiting"], sum(e["referral_count"] for e in mine),
            referring), wid
        assert row["referral_driven_share"] == referring / len(mine)


def check_contacts(p: dlt.Pipeline, sim: SimServer) -> list[dict[str, Any]]:
    rows = _view(p, "contacts_current")
    want = {c["id"]: c for c in truth(sim, "contacts")}
    assert len(rows) == len({r["contact_id"] for r in rows}) == len(want)
    for row in rows:
        c = want[row["contact_id"]]
        assert (row["email"], row["external_id"], row["plan"], list(row["tags"])) == (
            c["email"], c["external_id"], c["traits"].get("plan"), c["tags"]), c["id"]
    return rows


def check_overview(sim: SimServer, api: httpx.Client, contacts: list[dict[str, Any]],
                   campaigns: list[dict[str, Any]], referrals: list[dict[str, Any]],
                   events: list[dict[str, Any]], surveys: list[dict[str, Any]]) -> None:
    ov = api.get("/analytics/overview").json()
    assert len(contacts) == ov["total_contacts"]
    since = dt.datetime.fromisoformat(sim.info()["now"].replace("Z", "+00:00")) - \
        dt.timedelta(days=30)
    assert sum(1 for c in contacts if c["created_at"] >= since) == ov["contacts_30d"]
    assert sum(1 for c in campaigns if c["status"] == "active") == ov["active_campaigns"]
    links, convs = sum(r["links"] for r in referrals), sum(r["conversions"] for r in referrals)
    assert round(convs / links, 4) == ov["referral_conversion_rate"]
    n_events = sum(r["events"] for r in events)
    assert round(n_events / len({r["day"] for r in events}), 2) == ov["events_avg_daily"]
    nps = [_r(s["nps"], 1) for s in surveys if s["nps"] is not None]
    assert _r(sum(nps) / len(nps), 1) == ov["nps_score"]  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_views_equal_the_apis_own_numbers(kind: str, make_sim: Callable[..., SimServer],
                                          api: Callable[[SimServer], httpx.Client],
                                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sim = make_sim()
    client = api(sim)
    p = _pipeline(tmp_path, kind, request)
    for step in ("first sync", "after a day of activity"):
        if step != "first sync":
            control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
        _sync(p, sim)
        assert create_models(p) == list(MODEL_NAMES), step
        assert _comments(p, kind) == {m.name: m.description for m in MODELS}
        check_surveys(p, sim, client)
        check_waitlists(p, sim, client)
        check_overview(sim, client, check_contacts(p, sim), check_campaigns(p, client),
                       check_referrals(p, sim, client), check_events(p, client),
                       _view(p, "survey_nps"))
