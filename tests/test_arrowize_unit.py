"""Unit tests of arrowize.py: pages of event dicts -> arrow tables.

A batch is converted by pyarrow's JSON reader when the page bodies came along, by pyarrow from
the dicts when they did not, by Python when pyarrow cannot type it; all must give the same
columns, types and values, and column types must stay stable from batch to batch.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from growthos_source.arrowize import ArrowPages
from growthos_source.page_batch import Batch, read_bodies

TS = pa.timestamp("us", tz="UTC")

BATCHES: dict[str, list[dict[str, Any]]] = {
    "nested, missing and null objects": [
        {"id": "e1", "context": {"page": {"url": "/a", "title": "A"}, "ip": "1.1.1.1"},
         "properties": {}},
        {"id": "e2", "context": {"page": None, "ip": "1.1.1.2"}, "properties": {"n": 3}},
        {"id": "e3", "context": None},
        {"id": "e4"},
    ],
    "lists stay JSON text": [
        {"id": "e1", "properties": {"items": [{"sku": "A", "qty": 1}], "tags": []}},
        {"id": "e2", "properties": {"items": None}},
        {"id": "e3", "properties": {"tags": ["x", "ü"]}},
    ],
    "timestamps": [
        {"id": "e1", "timestamp": "2026-02-20T14:22:00.123Z", "received_at": None},
        {"id": "e2", "timestamp": "2026-02-20T14:22:01Z",
         "received_at": "2026-02-20T14:22:02.5Z"},
    ],
    "non-ASCII keys and scalar types": [
        {"id": "e1", "properties": {"référence": "x", "amount": 1.5, "ok": True, "n": 2}},
        {"id": "e2", "properties": {"référence": None, "amount": 2.0, "ok": False, "n": None}},
    ],
    "a field that changes type (pyarrow refuses the batch)": [
        {"id": "e1", "properties": {"v": 1, "w": "a"}},
        {"id": "e2", "properties": {"v": "one", "w": "b"}},
    ],
}


def as_dict(t: pa.Table) -> dict[str, tuple[str, list[Any]]]:
    return {n: (str(t.schema.field(n).type), t.column(n).to_pylist()) for n in t.column_names}


def python_table(pages: ArrowPages, rows: list[dict[str, Any]]) -> dict[str, Any]:
    cols = pages._python_columns(rows)
    return {n: (str(a.type), a.to_pylist()) for n, a in cols.items()}


def page(rows: list[dict[str, Any]], **dumps: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """A page body as the API sends it, and its rows as the client parsed them."""
    body = orjson.dumps({"data": rows, "has_more": False, "next_cursor": None}, **dumps)
    return body, orjson.loads(body)["data"]


def batch_of(*pages: tuple[bytes, list[dict[str, Any]]], keep: Any = None) -> Batch:
    b = Batch()
    for body, data in pages:
        b.add([r for r in data if keep is None or keep(r)], body, data)
    return b


@pytest.mark.parametrize("case", sorted(BATCHES))
def test_json_reader_pyarrow_and_python_paths_agree(case: str) -> None:
    rows = BATCHES[case]
    expected = python_table(ArrowPages(), rows)
    assert as_dict(ArrowPages().table(rows)) == expected
    assert as_dict(ArrowPages().table(batch_of(page(rows)))) == expected
    # pretty-printed bodies (newlines inside) and one page per row read the same
    split = batch_of(*(page([r], option=orjson.OPT_INDENT_2) for r in rows))
    assert as_dict(ArrowPages().table(split)) == expected


def test_the_json_reader_is_used_and_takes_only_the_kept_rows() -> None:
    first, second = page(BATCHES["nested, missing and null objects"]), page(
        BATCHES["non-ASCII keys and scalar types"])
    b = batch_of(first, second, keep=lambda r: r["id"] != "e2")
    assert b.bodies is not None and len(b.mask) == 6 and b.mask.count(True) == 4
    struct = read_bodies(b.bodies, b.mask, len(b))
    assert struct is not None  # the JSON reader's path, not a fallback
    assert struct.field("id").to_pylist() == ["e1", "e3", "e4", "e1"]
    kept = [r for r in BATCHES["nested, missing and null objects"]
            + BATCHES["non-ASCII keys and scalar types"] if r["id"] != "e2"]
    assert as_dict(ArrowPages().table(b)) == python_table(ArrowPages(), kept)


def test_the_json_reader_path_steps_aside_when_it_would_type_differently() -> None:
    # it infers timestamps from some strings, which pa.array keeps as text
    rows = [{"id": "e1", "properties": {"when": "2026-02-20T14:22:00"}}]
    b = batch_of(page(rows))
    assert b.bodies and read_bodies(b.bodies, b.mask, len(b)) is None
    assert as_dict(ArrowPages().table(b))["properties__when"] == (
        "string", ["2026-02-20T14:22:00"])


def test_rows_that_are_not_the_pages_own_take_the_dicts_path() -> None:
    body, data = page([{"id": "e1", "n": 1}])
    b = Batch()
    b.add([{"id": "e1", "n": 1}], body, data)  # equal, but not the page's objects
    assert b.bodies is None
    b2 = Batch()
    b2.add(data, None, None)  # no body (read ahead, pickled)
    assert b2.bodies is None
    assert as_dict(ArrowPages().table(b)) == as_dict(ArrowPages().table(b2)) == {
        "id": ("string", ["e1"]), "n": ("int64", [1])}


def test_columns_are_flat_typed_and_keep_every_value() -> None:
    t = as_dict(ArrowPages().table(BATCHES["nested, missing and null objects"]
                                   + BATCHES["timestamps"]))
    assert t["context__page__url"] == ("string", ["/a", None, None, None, None, None])
    assert t["properties__n"] == ("int64", [None, 3, None, None, None, None])
    assert t["timestamp"][0] == str(TS)
    assert [v and v.isoformat() for v in t["timestamp"][1]][4:] == [
        "2026-02-20T14:22:00.123000+00:00", "2026-02-20T14:22:01+00:00"]
    lists = as_dict(ArrowPages().table(BATCHES["lists stay JSON text"]))
    assert lists["properties__items"] == ("string", ['[{"sku":"A","qty":1}]', None, None])
    assert lists["properties__tags"] == ("string", ["[]", None, '["x","ü"]'])
    keys = as_dict(ArrowPages().table(BATCHES["non-ASCII keys and scalar types"]))
    assert all(n.isascii() for n in keys)  # keys.py: ASCII column names
    assert [v for n, v in keys.items() if n.startswith("properties__reference")] == [
        ("string", ["x", None])]


def test_a_value_of_another_type_goes_to_a_variant_column_across_batches() -> None:
    pages = ArrowPages()
    first = as_dict(pages.table([{"id": "e1", "properties": {"v": 1, "amount": 2}}]))
    assert first["properties__v"] == ("int64", [1])
    later = as_dict(pages.table([{"id": "e2", "properties": {"v": "one", "amount": 2.5}},
                                 {"id": "e3", "properties": {"v": 3, "amount": None}}]))
    # one batch both ways: pyarrow refuses it, Python splits it
    assert later["properties__v__v_text"] == ("string", ["one", None])
    assert later["properties__v"] == ("int64", [None, 3])  # each value in its own type's column
    again = as_dict(pages.table([{"id": "e4", "properties": {"v": "two", "amount": 3.25}}]))
    assert again["properties__v__v_text"] == ("string", ["two"])
    assert "properties__v" not in again
    assert again["properties__amount__v_double"] == ("double", [3.25])  # never truncated to 3


def test_known_schema_types_win() -> None:
    pages = ArrowPages({"properties__n": "double", "properties__gone": "text",
                        "timestamp": "timestamp"})
    t = as_dict(pages.table([{"id": "e1", "properties": {"n": 2, "gone": None},
                              "timestamp": "not a time"}]))
    assert t["properties__n"] == ("double", [2.0])
    assert t["properties__gone"] == ("string", [None])  # a null column keeps its known type
    assert t["timestamp__v_text"] == ("string", ["not a time"])


def test_the_primary_key_is_not_nullable() -> None:
    t = ArrowPages().table([{"id": "e1", "x": 1}])
    assert not t.schema.field("id").nullable and t.schema.field("x").nullable
