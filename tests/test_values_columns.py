"""Typed columns from the document (issue 13, item 4): every field our OpenAPI document declares
for a table exists in that table with its declared type from the first load, null or not.

The declarations are data in `growthos_source/columns.json` (the connector does not read the
simulator's files). Regenerate them after changing the document:

    .venv/bin/python tests/test_values_columns.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from growthos_source.columns import COLUMNS_FILE, declared, declared_types
from growthos_source.endpoints import ENDPOINTS

DOCUMENT = ROOT / "growthos_sim" / "openapi" / "management.yaml"
_SCALARS = {"integer": "bigint", "number": "double", "boolean": "bool", "string": "text"}
_FORMATS = {"date-time": "timestamp", "date": "date"}
MAX_DEPTH = 4  # nested objects flattened this deep (dlt's `a__b` columns); deeper: free-form


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema or "anyOf" in schema or "oneOf" in schema:
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            continue
        # `anyOf: [X, {type: null}]` is a nullable X; other unions have no one column type
        options = [o for o in schema.get("anyOf", schema.get("oneOf", []))
                   if o.get("type") != "null"]
        if len(options) != 1:
            return {}
        schema = options[0]
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_resolve(doc, part).get("properties", {}))
        return merged
    return schema


def _columns(doc: dict[str, Any], schema: dict[str, Any], prefix: str, depth: int,
             out: dict[str, str]) -> None:
    for name, prop in _resolve(doc, schema).get("properties", {}).items():
        prop = _resolve(doc, prop)
        types = prop.get("type", [])
        types = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
        column = f"{prefix}{name}"
        if types == ["object"] or (not types and "properties" in prop):
            if prop.get("properties") and depth < MAX_DEPTH:
                _columns(doc, prop, column + "__", depth + 1, out)
            continue  # free-form (traits, properties): evolves as the data does
        if len(types) != 1 or types[0] not in _SCALARS:
            continue  # arrays become child tables; mixed types have no one column type
        out[column] = _FORMATS.get(prop.get("format", ""), _SCALARS[types[0]])


def _record_schema(doc: dict[str, Any], path: str) -> dict[str, Any] | None:
    op = doc["paths"].get(path, {}).get("get")
    if op is None:
        return None
    schema = _resolve(doc, op["responses"]["200"]["content"]["application/json"]["schema"])
    data = schema.get("properties", {}).get("data")
    if data is not None and _resolve(doc, data).get("type") == "array":
        return _resolve(doc, _resolve(doc, data)["items"])
    return schema


def expected(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """table -> column -> dlt data type, from the document."""
    out: dict[str, dict[str, str]] = {}
    for ep in ENDPOINTS:
        if ep.kind == "parent":
            continue
        schema = _record_schema(doc, ep.path)
        if schema is None:
            continue  # POST /analytics/query: rows the connector makes from the counts
        cols: dict[str, str] = {}
        _columns(doc, schema, "", 0, cols)
        cols.pop("request_id", None)  # the envelope's, not the record's
        out[ep.table] = dict(sorted(cols.items()))
    return out


def _doc() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())


def test_the_declarations_match_the_document() -> None:
    assert json.loads(COLUMNS_FILE.read_text()) == expected(_doc()), (
        "growthos_source/columns.json is stale: run .venv/bin/python tests/test_values_columns.py")


def test_declarations_are_dlt_column_hints() -> None:
    hints = declared("survey_responses")
    assert hints["responded_at"] == {"name": "responded_at", "data_type": "timestamp",
                                     "nullable": True}
    assert declared("no_such_table") == {}


if __name__ == "__main__":
    COLUMNS_FILE.write_text(json.dumps(expected(_doc()), indent=1) + "\n")
    print(f"wrote {COLUMNS_FILE}")


_DUCKDB = {"text": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN",
           "timestamp": "TIMESTAMP WITH TIME ZONE", "date": "DATE"}


def _value(rec: dict[str, Any], column: str) -> Any:
    for part in column.split("__"):
        rec = rec.get(part) if isinstance(rec, dict) else None  # type: ignore[assignment]
    return rec


def test_every_declared_column_exists_with_its_type_from_the_first_load(make_sim,
                                                                        tmp_path: Path) -> None:
    from conftest import truth
    from warehouse import Warehouse

    sim = make_sim(contacts=30, events=60)
    wh = Warehouse(tmp_path, sim)
    tables = tuple(t for t in json.loads(COLUMNS_FILE.read_text()) if t != "analytics_overview")
    wh.sync(resources=tables)
    got = {(t, c): ty for t, c, ty in wh.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = '{ds}'")}
    never_sent = []
    for table in tables:
        rows = truth(sim, table)
        for column, dtype in declared_types(table).items():
            assert got.get((table, column)) == _DUCKDB[dtype], (table, column, dtype)
            if all(_value(r, column) is None for r in rows):
                never_sent.append((table, column))
    # the point: columns no record had a value for exist all the same
    assert never_sent, "every declared column had a value somewhere: the test proves nothing"

