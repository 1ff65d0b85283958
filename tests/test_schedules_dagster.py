"""Dagster: deploy/dagster/growthos_dagster.py materializes one asset per table against the
local server, and the tables equal the truth (needs the `dagster` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dagster
import dlt
from conftest import truth
from warehouse import Warehouse, assert_equals_truth

from growthos_sim import DEFAULT_KEY

ROOT = Path(__file__).resolve().parent.parent


def _module() -> object:
    spec = importlib.util.spec_from_file_location(
        "growthos_dagster_test", ROOT / "deploy" / "dagster" / "growthos_dagster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_materialize_one_asset_per_table(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=50, events=300)
    wh = Warehouse(tmp_path, sim)
    info = sim.info()
    assets = _module().growthos_assets(  # type: ignore[attr-defined]
        wh.pipeline, api_key=DEFAULT_KEY, base_url=sim.base_url,
        waitlist_ids=info["waitlist_ids"], funnel_ids=info["funnel_ids"],
        cohort_ids=info["cohort_ids"])
    names = {k.path[-1] for k in assets.keys}
    # One asset per table, none for the hidden parent walks.
    assert {"dlt_growthos_contacts", "dlt_growthos_events", "dlt_growthos_surveys"} <= names
    assert not any("_all" in n for n in names), names
    wanted = [k for k in assets.keys
              if k.path[-1] in ("dlt_growthos_contacts", "dlt_growthos_events")]
    result = dagster.materialize([assets], selection=wanted)
    assert result.success
    rows = {e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert len(rows) == len(wanted)
    assert assert_equals_truth(wh, "contacts") == len(truth(sim, "contacts"))
    assert assert_equals_truth(wh, "events") == len(truth(sim, "events"))
    assert isinstance(wh.pipeline, dlt.Pipeline)
