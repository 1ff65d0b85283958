"""Unit tests of values.py and its use in arrowize.py: one policy, both load paths."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from growthos_source.arrowize import ArrowPages
from growthos_source.page_batch import Batch
from growthos_source.values import ValueGuard, exact_json, fits, needs_exact_parse

NAMING = NamingConvention()


def test_numbers_beyond_int64_and_doubles_are_parsed_exactly() -> None:
    body = (b'{"data": [{"a": 18446744073709551616, "b": 0.12345678901234567890123, '
            b'"c": 0.25, "d": 9223372036854775807, "e": 1e5, "f": -98765432109876543210}]}')
    assert needs_exact_parse(body)
    row = exact_json(body)["data"][0]
    assert row == {"a": "18446744073709551616", "b": "0.12345678901234567890123", "c": 0.25,
                   "d": 9223372036854775807, "e": 100000.0, "f": "-98765432109876543210"}
    assert not needs_exact_parse(b'{"a": 1.5, "cursor": "c_00000000000000000000001"}')


def test_a_column_holds_only_what_its_type_holds_exactly() -> None:
    assert fits("double", "bigint", 2**53) and not fits("double", "bigint", 2**53 + 1)
    assert not fits("bool", "bigint", 7) and not fits("bool", "double", 0.25)
    assert not fits("bool", "text", "no") and not fits("bigint", "text", "02134")
    assert not fits("text", "bool", True) and fits("timestamp", "text", "2026-01-01T00:00:00Z")


def test_the_row_guard_renames_colliding_keys_and_moves_flipped_types() -> None:
    guard = ValueGuard({"traits__is_beta": "bool", "traits__seats": "bigint"}, NAMING)
    rows: list[dict[str, Any]] = [
        {"id": "c1", "id__": "x", "userId": "u1", "user_id": "u2",
         "traits": {"is_beta": 7, "seats": "02134", "a.b": 1, "a_b": 2, "x__y": 3,
                    "x": {"y": 4}, "big": 2**63}},
        {"id": "c2", "userId": "u3", "traits": {"is_beta": False, "seats": 3}},
    ]
    guard.rows(rows)
    one, two = rows
    assert one["id"] == "c1" and one["user_id"] == "u2"
    assert sorted(v for k, v in one.items() if k.startswith(("id_k_", "user_id_k_"))) == \
        ["u1", "x"]
    t = one["traits"]
    assert t["is_beta__v_bigint"] == 7 and "is_beta" not in t
    assert t["seats__v_text"] == "02134" and t["big"] == str(2**63)
    assert t["a_b"] == 2 and sorted(v for k, v in t.items() if k.startswith("a_b_k_")) == [1]
    assert t["x"] == {"y": 4} and [v for k, v in t.items() if k.startswith("x__y_k_")] == [3]
    # a record with only one of the keys keeps the plain column
    assert two["userId"] == "u3" and two["traits"] == {"is_beta": False, "seats": 3}


QUIRKY = [
    {"id": "e1", "id__": "trailing", "userId": "camel", "user_id": "snake",
     "properties": {"flag": True, "n": 1, "amount": 1.5, "a.b": "dot", "a_b": "underscore",
                    "x__y": "flat", "x": {"y": "nested"}}},
    {"id": "e2", "properties": {"flag": 7, "n": "02134", "amount": 9007199254740993,
                                "big": 2**64 - 1}},
    {"id": "e3", "properties": {"flag": "no", "n": 2, "amount": 0.25, "big": 5}},
]


def _as_dict(t: pa.Table) -> dict[str, list[Any]]:
    return {n: t.column(n).to_pylist() for n in t.column_names}


def test_the_arrow_path_keeps_every_value_whichever_converter_runs() -> None:
    body = orjson.dumps({"data": QUIRKY, "has_more": False, "next_cursor": None})

    def fresh() -> ArrowPages:
        return ArrowPages({"properties__flag": "bool"}, NAMING.normalize_path)

    batch = Batch()
    exact = needs_exact_parse(body)  # as the client decides (decode.py): then it has no body
    data = exact_json(body)["data"] if exact else orjson.loads(body)["data"]
    batch.add(data, None if exact else body, data)
    dicts = [orjson.loads(orjson.dumps(r)) for r in QUIRKY]
    a, b = _as_dict(fresh().table(batch)), _as_dict(fresh().table(dicts))
    assert a == b
    assert a["id"] == ["e1", "e2", "e3"] and a["user_id"] == ["snake", None, None]
    assert sorted(v for k, c in a.items() if k.startswith(("id_k_", "user_id_k_"))
                  for v in c if v) == ["camel", "trailing"]
    assert a["properties__flag"] == [True, None, None]
    assert a["properties__flag__v_bigint"] == [None, 7, None]
    assert a["properties__flag__v_text"] == [None, None, "no"]
    assert a["properties__n"] == [1, None, 2] and a["properties__n__v_text"] == [None, "02134", None]
    assert a["properties__amount"] == [1.5, None, 0.25]
    assert a["properties__amount__v_bigint"] == [None, 9007199254740993, None]
    assert a["properties__big"] == [None, str(2**64 - 1), None]
    assert a["properties__big__v_bigint"] == [None, None, 5]
    assert a["properties__a_b"] == ["underscore", None, None]
    assert a["properties__x__y"] == ["nested", None, None]
    kept = {v for k, c in a.items() if k.startswith("properties__") for v in c}
    assert {"dot", "flat"} <= kept
