"""`contacts_history` (opt-in SCD2): a contact created, updated twice, deleted and back again
leaves exactly its versions, on DuckDB and PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import dlt
import httpx
import pytest
from conftest import control, truth
from warehouse import Warehouse, norm

from growthos_sim import DEFAULT_KEY, SimServer
from growthos_source import sync

TABLES = ("contacts", "contacts_history")


def _pipeline(kind: str, tmp: Path, wh: Warehouse, request: pytest.FixtureRequest) -> None:
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        wh.pipeline = dlt.pipeline(pipeline_name="history_pg", pipelines_dir=str(tmp / "pg"),
                                   destination=dlt.destinations.postgres(url),
                                   dataset_name=wh.dataset)


def _run(wh: Warehouse) -> None:
    sync(wh.pipeline, wh.source(history=["contacts"]).with_resources(*TABLES))


def _versions(wh: Warehouse, cid: str) -> list[dict[str, Any]]:
    with wh.pipeline.sql_client() as c:
        name = c.make_qualified_table_name("contacts_history")
        rows = c.execute_sql(f"SELECT updated_at, valid_from, valid_to FROM {name} WHERE id = %s "
                             "ORDER BY valid_from", cid)
    return [{"updated_at": norm(u), "valid_from": f, "valid_to": t} for u, f, t in rows]


def _open_versions(wh: Warehouse) -> set[tuple[Any, ...]]:
    with wh.pipeline.sql_client() as c:
        name = c.make_qualified_table_name("contacts_history")
        rows = c.execute_sql(f"SELECT id, updated_at FROM {name} WHERE valid_to IS NULL")
    return {(i, norm(u)) for i, u in rows}


def _reappear(sim: SimServer, cid: str) -> None:
    """The API answers a deleted contact again (e.g. restored by an admin)."""
    w = sim.world
    with w.lock:
        w.contacts.deleted.pop(cid)
        w.contacts.touch(cid)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_versions_of_a_contact(kind: str, make_sim, tmp_path: Path,
                               request: pytest.FixtureRequest) -> None:
    sim = make_sim(contacts=40, events=100)
    wh = Warehouse(tmp_path, sim)
    _pipeline(kind, tmp_path, wh, request)
    api = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
                       timeout=30)
    _run(wh)
    assert _open_versions(wh) == {(c["id"], norm(c["updated_at"])) for c in truth(sim, "contacts")}

    made = control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"create": 1}})
    [cid] = made.json()["contacts"]["create"]
    _run(wh)
    stamps = [norm(api.get(f"/contacts/{cid}").json()["updated_at"])]
    for plan in ("pro", "enterprise"):
        control(sim, "POST", "mutate", json={"advance": "1h", "activity": False})
        r = api.patch(f"/contacts/{cid}", json={"traits": {"plan": plan}})
        assert r.status_code == 200, r.text
        stamps.append(norm(r.json()["updated_at"]))
        _run(wh)
    control(sim, "POST", "mutate", json={"advance": "1h", "activity": False})
    assert api.delete(f"/contacts/{cid}").status_code == 204
    _run(wh)
    control(sim, "POST", "mutate", json={"advance": "1h", "activity": False})
    _reappear(sim, cid)
    _run(wh)

    v = _versions(wh, cid)
    # created, two updates (each closing the one before), deleted (closed), back (open again)
    assert [x["updated_at"] for x in v] == stamps + [stamps[-1]]
    assert all(a["valid_to"] == b["valid_from"] for a, b in itertools.pairwise(v[:3]))
    assert v[2]["valid_to"] is not None and v[2]["valid_to"] < v[3]["valid_from"]
    assert v[3]["valid_to"] is None
    # Every other contact: exactly one open version, equal to the API's record.
    assert _open_versions(wh) == {(c["id"], norm(c["updated_at"])) for c in truth(sim, "contacts")}
    api.close()
