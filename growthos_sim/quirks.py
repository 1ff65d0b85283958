"""/_sim/quirks: responses that are not what the docs promise, for robustness tests.

Each kind changes `count` contacts (bumping `updated_at` so incremental readers see them) and
adds `count` new events at the server clock:

  new_field      a top-level field the document does not list
  type_change    a field whose JSON type differs from the one seen so far
  null_required  null where the document says a value is always present (updated_at,
                 timestamp, tags)
  huge_string    a 1 MB string
  deep_nesting   traits nested 30 levels deep
  unicode        non-ASCII keys and values, emoji included
  big_numbers    integers in 2^63..2^64 and beyond 2^64, a decimal with 23 digits (sent as
                 written: JSON numbers have no size limit, int64 and doubles do)
  colliding_keys keys that one column name would merge: `externalId`/`external_id`
                 (`userId`/`user_id` on events), `a.b`/`a_b`/`a-b`, `x__y` beside nested
                 `x.y`, `id__` beside `id`
  type_flips     values of another type than the field's usual one: the boolean trait
                 `is_beta` (property `flag`) as 7, 0.25 or "no" in turn, the integer `seats`
                 (`count`) as "02134", the double `lifetime_value` (`amount`) as
                 9007199254740993 (not a double)
  null_cursor    null `updated_at` on the contacts and null `timestamp` on the events; applied
                 last, so its event is the newest of the stream

Protocol-level misbehaviour (empty pages, repeated cursors, HTML instead of JSON) are faults:
see faults.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from . import fake
from .table import Record
from .util import iso_ms, new_id
from .world import World

KINDS = ("new_field", "type_change", "null_required", "huge_string", "deep_nesting", "unicode",
         "big_numbers", "colliding_keys", "type_flips", "null_cursor")


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": "bottom"}
    for i in range(levels, 0, -1):
        node = {f"l{i}": node}
    return node


# orjson cannot write integers beyond 64 bits or decimals beyond a double's digits: such numbers
# are kept as already-written JSON (what a server in another language may well send).
_BIG = {"u64": 2**63 + 7, "u64_max": 2**64 - 1,
        "huge": orjson.Fragment(b"123456789012345678901234567890"),
        "long_decimal": orjson.Fragment(b"0.12345678901234567890123"),
        "neg_huge": orjson.Fragment(b"-98765432109876543210")}
_FLIPS: tuple[Any, ...] = (7, 0.25, "no")
_COLLIDING = {"a.b": "dot", "a_b": "underscore", "a-b": "dash", "x__y": "flat",
              "x": {"y": "nested"}}


def _collide(record: Record, top: dict[str, Any], nested: dict[str, Any]) -> None:
    record.update(top)
    nested.update(_COLLIDING)


def _flip(values: dict[str, Any], i: int, flag: str, integer: str, double: str) -> None:
    values.update({flag: _FLIPS[i % len(_FLIPS)], integer: "02134", double: 9007199254740993})


_CONTACT: dict[str, Callable[[Record], None]] = {
    "new_field": lambda c: c.update(loyalty_tier="gold"),
    "type_change": lambda c: c["traits"].update(seats="many", lifetime_value="n/a"),
    "null_required": lambda c: c.update(updated_at=None, tags=None),
    "huge_string": lambda c: c["traits"].update(essay="x" * 1_000_000),
    "deep_nesting": lambda c: c["traits"].update(deep=_deep(30)),
    "unicode": lambda c: c["traits"].update({"名前": "さくら 🌸", "émoji_🚀": "ünïcödé ✓"}),
    "big_numbers": lambda c: c["traits"].update(_BIG),
    "colliding_keys": lambda c: _collide(c, {"externalId": "ext_camel", "id__": "id_trailing"},
                                         c["traits"]),
    "null_cursor": lambda c: c.update(updated_at=None),
}
_EVENT: dict[str, Callable[[Record], None]] = {
    "new_field": lambda e: e.update(session_id="sess_42"),
    "type_change": lambda e: e["properties"].update(count="lots", amount="n/a"),
    "null_required": lambda e: e.update(timestamp=None),
    "huge_string": lambda e: e["properties"].update(payload="y" * 1_000_000),
    "deep_nesting": lambda e: e["properties"].update(deep=_deep(30)),
    "unicode": lambda e: e["properties"].update({"ключ": "значение", "😀": "😀"}),
    "big_numbers": lambda e: e["properties"].update(_BIG),
    "colliding_keys": lambda e: _collide(e, {"userId": "usr_camel", "id__": "id_trailing"},
                                         e["properties"]),
    "null_cursor": lambda e: e.update(timestamp=None),
}
_NO_CURSOR = ("null_required", "null_cursor")  # kinds whose contacts keep a null updated_at


def apply(w: World, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply the requested kinds; answer the contact and event ids each kind touched."""
    kinds = spec.get("kinds", list(KINDS))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown quirk kinds {unknown}; known: {list(KINDS)}")
    kinds = sorted(kinds, key=KINDS.index)  # null_cursor last: its event is the newest
    count = int(spec.get("count", 1))
    live = [c for c in w.contacts.iter_live()]
    out: dict[str, Any] = {}
    for kind in kinds:
        touched, events = [], []
        for i, c in enumerate(live[:count]):
            live.remove(c)
            if kind == "type_flips":
                _flip(c["traits"], i, "is_beta", "seats", "lifetime_value")
            else:
                _CONTACT[kind](c)
            if kind not in _NO_CURSOR:
                c["updated_at"] = iso_ms(w.clock.tick())
            w.contacts.touch(c["id"])
            touched.append(c["id"])
            ts = w.clock.tick()
            eid = new_id(w.rng, "evt_")
            name, ev = fake.event(w.rng, eid, c, ts, w.project["project_id"])
            if kind == "type_flips":
                _flip(ev["properties"], i, "flag", "count", "amount")
            else:
                _EVENT[kind](ev)
            w.events.append(ts, eid, c["id"], name, ev)
            events.append(eid)
        out[kind] = {"contacts": touched, "events": events}
    return out
