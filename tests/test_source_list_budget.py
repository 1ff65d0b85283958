"""Every list walk costs its pages and nothing more: a list of one page is one request.

Real HTTP to the local server, real dlt pipelines and DuckDB files; the requests are counted
by the server (/_sim/stats) and by the ledger (`_growthos_runs.requests`, per table), and the
minimum is taken from /_sim/truth: one request per page of each top-level list, one per page
of each parent's child list, one per parent for objects.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from warehouse import Warehouse, assert_equals_truth

# child table -> (parent table, the child's column naming its parent)
CHILDREN = {"segment_memberships": ("segments", "segment_id"),
            "survey_responses": ("surveys", "survey_id"),
            "referral_links": ("referral_programs", "program_id"),
            "webhook_deliveries": ("webhook_endpoints", "endpoint_id")}
OBJECTS = {"campaign_stats": "campaigns"}
PARENTS = ("segments", "surveys", "referral_programs", "webhook_endpoints", "campaigns")


def _pages(n: int) -> int:
    return max(1, math.ceil(n / 100))


def _minimum(sim: Any) -> dict[str, int]:
    out = {t: _pages(len(truth(sim, t))) for t in PARENTS}
    for child, (parent, key) in CHILDREN.items():
        per = Counter(str(r[key]) for r in truth(sim, child))
        out[child] = sum(_pages(per.get(str(p["id"]), 0)) for p in truth(sim, parent))
    for obj, parent in OBJECTS.items():
        out[obj] = len(truth(sim, parent))
    return out


@pytest.mark.parametrize("dialect", ["document", "docs"])
def test_each_list_costs_its_pages_only(make_sim: Any, tmp_path: Path, dialect: str) -> None:
    sim = make_sim(contacts=50, events=100, dialect=dialect)
    wh = Warehouse(tmp_path, sim)
    tables = ("contacts", *PARENTS, *CHILDREN, *OBJECTS)
    before = int(control(sim, "GET", "stats").json().get("requests", 0))
    wh.sync(resources=tables)
    used = int(control(sim, "GET", "stats").json().get("requests", 0)) - before
    ledger = dict(wh.query("SELECT table_name, requests FROM {ds}._growthos_runs"))
    want = {"contacts": 1, **_minimum(sim)}
    assert {t: ledger.get(t) for t in want} == want
    assert used == sum(want.values())
    for t in tables:
        assert_equals_truth(wh, t)
