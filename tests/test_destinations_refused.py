"""A load package the warehouse refuses never blocks the pipeline forever (warehouse/refusals.py).

A user adds a NOT NULL constraint to `contacts.traits__name` (every contact has a name so
far); then an identify call through the Ingest API removes one contact's name. The next sync's
load is refused by the warehouse (DuckDB and a real PostgreSQL server): that run and the one
after it fail with one line naming the table, the record and the warehouse's reason. The
documented recovery (`growthos-sync reset --pending`, which runs `refusals.set_aside`) clears
the package; the next sync puts the record in `_growthos_rejects` with the reason and loads the
rest exactly.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import control, truth
from test_destinations import make_warehouse
from test_events_late import assert_events_exact, wh_events
from warehouse import Warehouse, norm

from growthos_sim import DEFAULT_WRITE_KEY
from growthos_source.warehouse import refusals
from growthos_source.warehouse.refusals import RefusedLoadError

TABLES = ("contacts", "events")


def _alter(wh: Warehouse, sql: str) -> None:
    if wh.kind == "postgres":
        import psycopg2

        with psycopg2.connect(wh.postgres_url) as con, con.cursor() as cur:
            cur.execute(sql)
    else:
        import duckdb

        with duckdb.connect(wh.db) as con:
            con.execute(sql)


@pytest.mark.parametrize("kind", ("duckdb", "postgres"))
def test_a_refused_record_is_named_then_set_aside_and_the_rest_loads(
        kind: str, make_sim, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sim = make_sim(contacts=40, events=300, processing_delay_ms=0)
    wh = make_warehouse(kind, tmp_path, sim, request)
    wh.sync(resources=TABLES)
    _alter(wh, f"ALTER TABLE {wh.dataset}.contacts ALTER COLUMN traits__name SET NOT NULL")
    victim = next(c for c in truth(sim, "contacts") if c.get("external_id"))
    with httpx.Client(base_url=sim.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_WRITE_KEY}"}) as ingest:
        r = ingest.post("/identify", json={"user_id": victim["external_id"],
                                           "traits": {"name": None}})
        assert r.status_code == 202, r.text
    control(sim, "POST", "mutate", json={"advance": "1h", "events": {"create": 15},
                                         "contacts": {"update": 3}}).raise_for_status()
    for _ in range(2):  # the run that hits it, and the next one (the package is pending)
        with pytest.raises(RefusedLoadError) as err:
            wh.sync(resources=TABLES)
        line = str(err.value)
        assert "\n" not in line and "of table contacts" in line, line
        assert victim["id"] in line and "traits__name" in line, line
        assert "growthos-sync reset --pending" in line, line
        assert wh.pipeline.has_pending_data

    done = refusals.set_aside(wh.pipeline)
    assert done is not None
    assert {t: [r["id"] for r in v] for t, v in done["records"].items()} == {
        "contacts": [victim["id"]]}
    assert not wh.pipeline.has_pending_data
    wh.sync(resources=TABLES)
    rejects = wh.query("SELECT record_id, reason FROM {ds}._growthos_rejects "
                       "WHERE table_name = 'contacts'")
    assert [r[0] for r in rejects] == [victim["id"]]
    assert "traits__name" in rejects[0][1], rejects
    # every other contact is loaded exactly (the victim keeps its earlier copy), events too
    got = {(r[0], norm(r[1])) for r in wh.query("SELECT id, updated_at FROM {ds}.contacts")}
    want = {(c["id"], norm(c["updated_at"])) for c in truth(sim, "contacts")}
    assert got - want == {(victim["id"], norm(victim["updated_at"]))}
    assert {i for i, _ in want - got} == {victim["id"]}
    assert_events_exact(wh_events(wh), sim)


def test_a_nul_character_postgres_refuses_is_set_aside(make_sim, tmp_path: Path,
                                                        postgres_url: str) -> None:
    """PostgreSQL takes no NUL character in text (JSON allows `\\u0000`): the records holding
    one are named, set aside and rejected; everything else loads."""
    sim = make_sim(contacts=40, events=300, processing_delay_ms=0)
    wh = Warehouse(tmp_path, sim, destination="postgres", postgres_url=postgres_url)
    wh.sync(resources=TABLES)
    victim = next(c for c in truth(sim, "contacts") if c.get("external_id"))
    with httpx.Client(base_url=sim.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_WRITE_KEY}"}) as ingest:
        r = ingest.post("/identify", json={"user_id": victim["external_id"],
                                           "traits": {"nickname": "nul\u0000here"}})
        assert r.status_code == 202, r.text
    control(sim, "POST", "mutate", json={"advance": "1h", "events": {"create": 15}}
            ).raise_for_status()
    with pytest.raises(RefusedLoadError) as err:
        wh.sync(resources=TABLES)
    line = str(err.value)
    assert "\n" not in line and "0x00" in line, line
    # the contact and its $identify event (which carries the traits) both hold the NUL
    done = refusals.set_aside(wh.pipeline)
    assert done is not None
    aside = {(t, r["id"]) for t, rows in done["records"].items() for r in rows}
    assert ("contacts", victim["id"]) in aside and {t for t, _ in aside} == {"contacts", "events"}
    assert victim["id"] in line or any(i in line for _, i in aside), line
    wh.sync(resources=TABLES)
    rejects = set(wh.query("SELECT table_name, record_id FROM {ds}._growthos_rejects"))
    assert rejects == aside
    assert_events_exact(wh_events(wh) + [
        (e["id"], e["timestamp"], e.get("contact_id"), e.get("user_id"))
        for e in truth(sim, "events") if ("events", e["id"]) in aside], sim)
