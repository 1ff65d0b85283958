"""`ENDPOINTS` is the one contract for the connector's tables (issue 13, item 8): the server's
truth tables, the tests' checks, the document's paths and the readers all agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from warehouse import CHECKS

from growthos_sim import truth
from growthos_sim.seeding import build_world
from growthos_source.columns import declared_types
from growthos_source.endpoints import BY_TABLE, ENDPOINTS, user_tables

ROOT = Path(__file__).resolve().parent.parent
TABLES = [ep.table for ep in ENDPOINTS if not ep.table.startswith("_")]
PER_RECORD = ("child", "child_object", "profiles", "objects_by_id")


def test_the_servers_truth_tables_are_the_connectors_tables() -> None:
    world = build_world(7, 20, 50)
    assert sorted(truth.tables(world)) == sorted(TABLES)


def test_the_tests_check_every_table_but_the_run_stamped_snapshots() -> None:
    assert set(CHECKS) == {t for t in TABLES if BY_TABLE[t].stamp is None}
    for table, (keys, _) in CHECKS.items():
        assert keys == BY_TABLE[table].primary_key


def test_paths_are_the_documents_and_templates_are_filled_from_the_entry() -> None:
    doc = yaml.safe_load((ROOT / "growthos_sim" / "openapi" / "management.yaml").read_text())
    for ep in ENDPOINTS:
        assert ep.path in doc["paths"], ep.table
        holes = re.findall(r"\{(\w+)\}", ep.path)
        if ep.kind in PER_RECORD and not ep.parent_param:
            assert holes == [ep.parent_field], ep.table  # readers fill exactly this hole
        else:
            assert holes == [], ep.table


def test_parents_come_first_and_every_table_has_a_user_name() -> None:
    seen: set[str] = set()
    for ep in ENDPOINTS:
        if ep.parent is not None:
            assert ep.parent in seen, f"{ep.table}: parent {ep.parent} must come before it"
        seen.add(ep.table)
        # hidden walks are named to the user by the tables they feed
        assert user_tables(ep.table), ep.table


def test_cursor_and_key_fields_are_declared_columns() -> None:
    for ep in ENDPOINTS:
        cols = declared_types(ep.table)
        if not cols:
            continue
        if ep.cursor:
            assert cols.get(ep.cursor) == "timestamp", ep.table
        for key in ep.primary_key:
            assert key in cols or key in (ep.parent_key, ep.stamp), (ep.table, key)


def test_readers_take_behaviour_from_the_entry_not_the_table_name() -> None:
    for name in ("readers/__init__.py", "readers/context.py", "readers/parents.py",
                 "readers/children.py", "readers/objects.py", "event_stream.py", "source.py",
                 "sync.py"):
        text = (ROOT / "growthos_source" / name).read_text()
        assert not re.search(r"\.table\s*==|==\s*\w+\.table\b", text), name


def test_child_list_sizes_come_from_a_declared_field_of_the_parents_records() -> None:
    """`size_field` (scheduling only) names a numeric column of the records that feed the child
    list: the parent table itself, or the table a hidden parent walk loads."""
    from growthos_source.readers.children import _pages

    sized = [ep for ep in ENDPOINTS if ep.size_field]
    assert {ep.table for ep in sized} >= {"segment_memberships"}
    for ep in sized:
        assert ep.kind == "child" and ep.parent is not None
        fed = ep.parent if not ep.parent.startswith("_") else next(
            e.table for e in ENDPOINTS if e.parent == ep.parent and e.kind == "passthrough")
        assert declared_types(fed).get(ep.size_field) in ("bigint", "double"), (ep.table, fed)
    assert [_pages({"n": v}, "n", 100) for v in (0, 100, 101, 250.0)] == [1, 1, 2, 3]
    assert [_pages({"n": v}, "n", 100) for v in (None, True, -1, "12", float("nan"),
                                                float("inf"))] == [None] * 6
    assert _pages({}, "n", 100) is None and _pages({"n": 5}, None, 100) is None
