"""No value is silently changed or lost (issue 13, item 3): big numbers, colliding keys, type
flips and null cursor values, through real HTTP, on dlt's row normalizer path (contacts) and
the arrow path (events)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from conftest import control, truth
from warehouse import Warehouse, norm

from growthos_source.values import value_type, variant

NEW_KINDS = ["big_numbers", "colliding_keys", "type_flips", "null_cursor"]


def _table(wh: Warehouse, table: str) -> dict[str, dict[str, Any]]:
    cols = [r[0] for r in wh.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = '{ds}' "
        f"AND table_name = '{table}' ORDER BY ordinal_position")]
    rows = wh.query(f"SELECT {', '.join(cols)} FROM {{ds}}.{table}")
    return {r[cols.index("id")]: dict(zip(cols, r)) for r in rows}


def _same(stored: Any, sent: Any) -> bool:
    """`stored` is `sent` exactly: the same type and value (timestamps compared as instants,
    an integer beyond int64 as its text, an integer up to 2^53 in a double column)."""
    if isinstance(stored, dt.datetime):
        return isinstance(sent, str) and norm(stored) == norm(sent)
    if isinstance(stored, str) and type(sent) is int:
        return not -(2**63) <= sent < 2**63 and stored == str(sent)
    if isinstance(stored, float) and type(sent) is int:
        return abs(sent) <= 2**53 and stored == sent
    return type(stored) is type(sent) and stored == sent


def _where(row: dict[str, Any], column: str, sent: Any) -> str | None:
    """The column of `row` that holds `sent` (the column or one of its variants), if any."""
    for col in (column, *(variant(column, t) for t in ("text", "bigint", "double", "bool"))):
        if col in row and row[col] is not None and _same(row[col], sent):
            return col
    return None


def test_every_scalar_trait_is_stored_exactly(make_sim, tmp_path: Path) -> None:
    """The seeded `custom_N` traits change type between contacts (a string here, 42 or True
    there): each value lands in the column of its own type, none is coerced."""
    sim = make_sim()
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",))
    got = _table(wh, "contacts")
    checked = 0
    for rec in truth(sim, "contacts"):
        for k, v in rec["traits"].items():
            if value_type(v) is None:
                continue
            assert _where(got[rec["id"]], f"traits__{k}", v), (rec["id"], k, v)
            checked += 1
    assert checked > 1000


def test_quirky_values_are_kept_exactly_on_both_paths(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=60, events=300)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))  # the usual types claim the columns first
    did = control(sim, "POST", "quirks", json={"kinds": NEW_KINDS, "count": 3}).json()
    wh.sync(resources=("contacts", "events"))  # the newest event has no timestamp: no crash

    for table, values in (("contacts", "traits"), ("events", "properties")):
        got = _table(wh, table)
        sent = {r["id"]: r for r in truth(sim, table)}
        # big numbers: exact, as text (int64 and doubles cannot hold them)
        for rid in did["big_numbers"][table]:
            row = got[rid]
            assert row[f"{values}__u64"] == str(2**63 + 7)
            assert row[f"{values}__u64_max"] == str(2**64 - 1)
            assert row[f"{values}__huge"] == "123456789012345678901234567890"
            assert row[f"{values}__neg_huge"] == "-98765432109876543210"
            assert row[f"{values}__long_decimal"] == "0.12345678901234567890123"
        # colliding keys: every value in a column of its own
        for rid in did["colliding_keys"][table]:
            row = got[rid]
            held = set(row.values())
            assert {"dot", "underscore", "dash", "flat", "nested", "id_trailing"} <= held
            assert row["id"] == rid and row[f"{values}__a_b"] == "underscore"
            assert row[f"{values}__x__y"] == "nested"
            camel = "ext_camel" if table == "contacts" else "usr_camel"
            assert camel in held
            assert row["external_id" if table == "contacts" else "user_id"] == \
                sent[rid]["external_id" if table == "contacts" else "user_id"]
        # type flips: the boolean, integer and double columns keep their type; the flipped
        # values are in variant columns, exactly
        flag, integer, double = (("is_beta", "seats", "lifetime_value") if table == "contacts"
                                 else ("flag", "count", "amount"))
        for i, rid in enumerate(did["type_flips"][table]):
            row = got[rid]
            want_flag = (7, 0.25, "no")[i]
            assert row[f"{values}__{flag}"] is None
            assert _where(row, f"{values}__{flag}", want_flag) == variant(
                f"{values}__{flag}", value_type(want_flag) or "")
            assert row[f"{values}__{integer}"] is None
            assert row[f"{values}__{integer}__v_text"] == "02134"
            assert row[f"{values}__{double}"] is None
            assert row[f"{values}__{double}__v_bigint"] == 9007199254740993
        # null cursor values: the records are reported, the mark ignores them, the rest loads
        rejected = {r[0] for r in wh.query(
            f"SELECT record_id FROM {{ds}}._growthos_rejects WHERE table_name = '{table}'")}
        assert set(did["null_cursor"][table]) <= rejected
        for kind in ("big_numbers", "colliding_keys", "type_flips"):
            assert set(did[kind][table]) <= set(got)
    # the next run reads on from the marks: nothing new, nothing lost
    again = wh.sync(resources=("contacts", "events"))
    assert again.rows.get("events", 0) == 0
    assert len(_table(wh, "events")) == len(truth(sim, "events")) - 3
