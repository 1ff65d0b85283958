"""Dialects: the shapes the server speaks. `document` is our OpenAPI document; `docs` is what
the public GrowthOS docs show where they differ from it (docs/api-shapes.md lists each one).

There is one domain model (the world's records, in the document's shape). A dialect changes only
what leaves the server: ids are minted with its prefixes (`generate.py`), and success bodies are
re-rendered here, at the serialization edge, after the handler answered. `/_sim/truth` renders the
connector's view of the same records: the values the API sent, under the document's column
names, so users' SQL never changes with the API's shape.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .world import World

Record = dict[str, Any]

# The docs' examples: `cntct_8x2m4k`, `cmpgn_abc123`, `srvy_abc123`, `ref_prog_abc`,
# `ref_link_x7k2`, `wl_entry_7k2m`, `wh_log_9z3n`, `chrt_abc123` (seg_, wl_, whep_, resp_, evt_,
# fnl_, key_, proj_ are the same in both).
DOCS_PREFIXES = {"con_": "cntct_", "camp_": "cmpgn_", "srv_": "srvy_", "prog_": "ref_prog_",
                 "lnk_": "ref_link_", "wle_": "wl_entry_", "whd_": "wh_log_", "coh_": "chrt_"}

# `2026-02-20T14:22:00.123Z` -> `2026-02-20T14:22:00Z`, over a whole body at C speed. Every string
# of that shape is a timestamp the server wrote (traits included), so all are rendered alike.
_MS = re.compile(rb'("\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z"')

# Operations whose answer is one contact or a page of contacts.
_CONTACT_OPS = {"listContacts", "getContact", "updateContact", "mergeContacts"}


@dataclass(frozen=True)
class Dialect:
    """What differs between the shapes a server can speak."""

    name: str
    prefixes: dict[str, str] = field(default_factory=dict)  # document prefix -> served prefix
    default_limit: int = 50  # page size when a request sends no `limit`
    rate_window_s: int = 1  # length of a rate-limit window (limit scales with it)
    request_id_on_success: bool = True
    ms_timestamps: bool = True
    contact_ref: str = "external_id"  # the contact's external identifier's field name
    members_as_contacts: bool = False  # GET /segments/{id}/contacts answers contact objects
    delivery_created_at: bool = True  # webhook delivery logs carry `created_at`

    group_by_paths: bool = False  # POST /analytics/query groups by any field path

    @property
    def renders(self) -> bool:
        return self != DOCUMENT

    def contract(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The request contract the server enforces in this dialect: our document, with
        `group_by` any field path where the docs allow one (`traits.source`)."""
        if not self.group_by_paths:
            return doc
        out = copy.deepcopy(doc)
        prop = out["components"]["schemas"]["AnalyticsQueryRequest"]["properties"]["group_by"]
        prop.pop("enum", None)
        prop["description"] = "A field path of the event or its contact: event, traits.source"
        return out

    def render(self, op_id: str, body: bytes, world: World) -> bytes:
        """A success body of `op_id`, as this dialect sends it (call under the world lock)."""
        if not self.renders or not body:
            return body
        obj = orjson.loads(body)
        if isinstance(obj, dict):
            if not self.request_id_on_success:
                obj.pop("request_id", None)
            rows = obj.get("data") if isinstance(obj.get("data"), list) else None
            shape = self._shapes().get(op_id)
            if shape is not None:
                if rows is not None:
                    obj["data"] = [shape(r, world) for r in rows]
                else:
                    obj = shape(obj, world)
        return self.timestamps(orjson.dumps(obj))

    def timestamps(self, body: bytes) -> bytes:
        return body if self.ms_timestamps else _MS.sub(rb'\1Z"', body)

    def truth(self, table: str, line: bytes) -> bytes:
        """One `/_sim/truth/{table}` line as the connector should hold it in this dialect:
        the values this dialect sends, the document's column names, null where this dialect
        sends nothing (the connector declares those columns)."""
        if not self.renders:
            return line
        if table == "segment_memberships" and self.members_as_contacts:
            r = orjson.loads(line)
            line = orjson.dumps({"contact_id": r["contact_id"], "email": r["email"],
                                 "added_at": None, "segment_id": r["segment_id"]})
        elif table == "webhook_deliveries" and not self.delivery_created_at:
            line = orjson.dumps({**orjson.loads(line), "created_at": None})
        return self.timestamps(line)

    # ---- record shapes --------------------------------------------------------------------
    def _shapes(self) -> dict[str, Callable[[Record, World], Record]]:
        out: dict[str, Callable[[Record, World], Record]] = {}
        if self.contact_ref != "external_id":
            for op in _CONTACT_OPS:
                out[op] = self._contact
        if self.members_as_contacts:
            out["listSegmentContacts"] = self._member
        if not self.delivery_created_at:
            out["listWebhookEndpointLogs"] = _without("created_at")
        return out

    def _contact(self, rec: Record, world: World) -> Record:
        return {(self.contact_ref if k == "external_id" else k): v for k, v in rec.items()}

    def _member(self, rec: Record, world: World) -> Record:
        """The docs: "returns paginated contacts" — the member's contact object."""
        contact = world.contacts.get(rec["contact_id"], include_deleted=True)
        if contact is None:  # not expected (members die with their contact), but never crash
            return {"id": rec["contact_id"], "email": rec.get("email")}
        return self._contact(contact, world)


def _without(name: str) -> Callable[[Record, World], Record]:
    def drop(rec: Record, world: World) -> Record:
        return {k: v for k, v in rec.items() if k != name}
    return drop


DOCUMENT = Dialect("document")
DOCS = Dialect("docs", prefixes=DOCS_PREFIXES, default_limit=25, rate_window_s=12,
               request_id_on_success=False, ms_timestamps=False, contact_ref="user_id",
               members_as_contacts=True, delivery_created_at=False, group_by_paths=True)
DIALECTS = {d.name: d for d in (DOCUMENT, DOCS)}


def by_name(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}: choose one of "
                         f"{', '.join(DIALECTS)}") from None
