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

Protocol-level misbehaviour (empty pages, repeated cursors, HTML instead of JSON) are faults:
see faults.py.
"""

from __future__ import annotations

from typing import Any, Callable

from . import fake
from .table import Record
from .util import iso_ms, new_id
from .world import World

KINDS = ("new_field", "type_change", "null_required", "huge_string", "deep_nesting", "unicode")


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": "bottom"}
    for i in range(levels, 0, -1):
        node = {f"l{i}": node}
    return node


_CONTACT: dict[str, Callable[[Record], None]] = {
    "new_field": lambda c: c.update(loyalty_tier="gold"),
    "type_change": lambda c: c["traits"].update(seats="many", lifetime_value="n/a"),
    "null_required": lambda c: c.update(updated_at=None, tags=None),
    "huge_string": lambda c: c["traits"].update(essay="x" * 1_000_000),
    "deep_nesting": lambda c: c["traits"].update(deep=_deep(30)),
    "unicode": lambda c: c["traits"].update({"名前": "さくら 🌸", "émoji_🚀": "ünïcödé ✓"}),
}
_EVENT: dict[str, Callable[[Record], None]] = {
    "new_field": lambda e: e.update(session_id="sess_42"),
    "type_change": lambda e: e["properties"].update(count="lots", amount="n/a"),
    "null_required": lambda e: e.update(timestamp=None),
    "huge_string": lambda e: e["properties"].update(payload="y" * 1_000_000),
    "deep_nesting": lambda e: e["properties"].update(deep=_deep(30)),
    "unicode": lambda e: e["properties"].update({"ключ": "значение", "😀": "😀"}),
}


def apply(w: World, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply the requested kinds; answer the contact and event ids each kind touched."""
    kinds = spec.get("kinds", list(KINDS))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown quirk kinds {unknown}; known: {list(KINDS)}")
    count = int(spec.get("count", 1))
    live = [c for c in w.contacts.iter_live()]
    out: dict[str, Any] = {}
    for kind in kinds:
        touched, events = [], []
        for c in live[:count]:
            live.remove(c)
            _CONTACT[kind](c)
            if kind != "null_required":
                c["updated_at"] = iso_ms(w.clock.tick())
            w.contacts.touch(c["id"])
            touched.append(c["id"])
            ts = w.clock.tick()
            eid = new_id(w.rng, "evt_")
            name, ev = fake.event(w.rng, eid, c, ts, w.project["project_id"])
            _EVENT[kind](ev)
            w.events.append(ts, eid, c["id"], name, ev)
            events.append(eid)
        out[kind] = {"contacts": touched, "events": events}
    return out
