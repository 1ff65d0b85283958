"""The Ingest API's model: checking a message, queueing it, and processing it later.

A message is checked at once (the 422s are synchronous, as the docs say), deduplicated on its
`message_id` against the last 24 h of server time, stamped `received_at`, and queued; it is
*processed* once server time reaches receipt + the processing delay (`World.receive`). Processing
resolves who the message is about at that moment (so a merge that happened while it waited is
honoured), applies traits, stitches identities and adds the event to the stream.

Identity stitching: a message carrying both `user_id` and a known `anonymous_id` of another,
anonymous contact merges that contact into the identified one; `alias` merges `previous_id`'s
contact into `user_id`'s and makes `previous_id` a permanent alias. Both use the Management
API's merge (`merge_records`), so the events move exactly as an API merge moves them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .api.contacts import merge_records
from .errors import ApiError, invalid
from .table import Record
from .util import DAY_MS, freeze, iso_ms, new_id, parse_ms
from .world import Batch, World

MAX_BODY_BYTES = 500 * 1024
MAX_BATCH_ITEMS = 500
DEDUP_WINDOW_MS = DAY_MS
MAX_PROPERTIES = 256
MAX_VALUE_BYTES = 10 * 1024
BATCH_TYPES = ("identify", "track", "page", "group")
# The reserved names the Ingest API docs list; any other `$` name is refused (events.mdx: "the
# prefix is reserved for system events and will be rejected by the Ingest API").
RESERVED = frozenset({
    "$page_view", "$form_submitted", "$referral_created", "$referral_converted",
    "$survey_responded", "$waitlist_joined", "$email_opened", "$email_clicked",
    "$email_bounced", "$email_unsubscribed", "$experiment_viewed", "$nps_submitted"})
# What each call stores in the stream: (event type, event name); `track` names its own.
_EVENTS = {"identify": ("identify", "$identify"), "page": ("page", "$page_view"),
           "group": ("group", "$group"), "track": ("track", None)}
_MIN_MS, _MAX_MS = parse_ms("1000-01-01T00:00:00Z"), parse_ms("9999-12-31T23:59:59.999Z")


class IngestState:
    """Per-world memory of the Ingest API: who is who, and which message ids were seen."""

    def __init__(self) -> None:
        self.by_user: dict[str, str] = {}  # user_id -> contact id
        self.by_anon: dict[str, str] = {}  # anonymous_id -> contact id
        self.aliases: dict[str, str] = {}  # previous_id -> user_id (permanent)
        self.seen: dict[str, int] = {}  # message_id -> receipt (ms)
        self._seen_order: deque[tuple[int, str]] = deque()
        self._indexed = -1  # contacts rows when by_user was last rebuilt

    def duplicate(self, message_id: str, now_ms: int) -> bool:
        """True when `message_id` was received within the last 24 h; else remember it."""
        order = self._seen_order
        while order and order[0][0] <= now_ms - DEDUP_WINDOW_MS:
            t, mid = order.popleft()
            if self.seen.get(mid) == t:
                del self.seen[mid]
        if message_id in self.seen:
            return True
        self.seen[message_id] = now_ms
        order.append((now_ms, message_id))
        return False

    # ---- identities ------------------------------------------------------------------------
    def _reindex(self, w: World) -> None:
        """user_id -> the contact that carries it: a live one if any, else one that was merged
        away (its user_id then leads to the survivor)."""
        by: dict[str, str] = {}
        deleted = w.contacts.deleted
        for rid, c in w.contacts.rows.items():
            ext = c["external_id"]
            if ext is not None and (ext not in by or rid not in deleted):
                by[ext] = rid
        self.by_user = by
        self._indexed = len(w.contacts.rows)

    def _live(self, w: World, cid: str | None) -> Record | None:
        return None if cid is None else w.contacts.get(w.survivor(cid))

    def user_contact(self, w: World, user_id: str) -> Record | None:
        """The live contact a `user_id` belongs to: the contact carrying it, or the survivor
        of merges that took that contact. The index is rebuilt when it may be stale: contacts
        were made by other means (mutate), or the entry found no longer fits."""
        for attempt in (0, 1):
            cid = self.by_user.get(user_id)
            if cid is not None:
                rec = w.contacts.get(cid, include_deleted=True)
                live = self._live(w, cid)
                if rec is not None and rec["external_id"] == user_id and live is not None:
                    return live
            if attempt == 1 or (len(w.contacts.rows) == self._indexed and cid is None):
                return None
            self._reindex(w)
        return None

    def anon_contact(self, w: World, anonymous_id: str) -> Record | None:
        return self._live(w, self.by_anon.get(anonymous_id))

    def resolve(self, w: World, batch: Batch, user_id: str | None,
                anonymous_id: str | None) -> Record:
        """The contact a message is about, made if new; stitches an anonymous profile into the
        identified contact when the message carries both ids."""
        uid = self.aliases.get(user_id, user_id) if user_id else None
        if uid is None and anonymous_id in self.aliases:
            uid = self.aliases[anonymous_id]
        cu = self.user_contact(w, uid) if uid else None
        ca = self.anon_contact(w, anonymous_id) if anonymous_id else None
        if cu is not None and ca is not None and cu["id"] != ca["id"] \
                and ca["external_id"] is None:
            batch.flush()  # the anonymous contact's processed events move too
            merge_records(w, cu, ca, False, iso_ms(w.clock.tick()))
        c = cu or ca
        if c is None or (cu is None and uid and c["external_id"] not in (None, uid)):
            c = self._create(w, uid)
        elif cu is None and uid:
            self._adopt(w, batch, c, uid)
        if anonymous_id:
            self.by_anon[anonymous_id] = c["id"]
        if uid:
            self.by_user[uid] = c["id"]
        return c

    def alias(self, w: World, batch: Batch, previous_id: str, user_id: str) -> None:
        """`previous_id` (anonymous or an old user id) becomes `user_id` for good."""
        uid = self.aliases.get(user_id, user_id)
        prev = self.user_contact(w, previous_id) or self.anon_contact(w, previous_id)
        target = self.user_contact(w, uid)
        if prev is not None and target is not None and prev["id"] != target["id"]:
            batch.flush()
            merge_records(w, target, prev, False, iso_ms(w.clock.tick()))
        elif prev is not None and target is None:
            self._adopt(w, batch, prev, uid)
            self.by_user[uid] = prev["id"]
        if previous_id != uid:
            self.aliases[previous_id] = uid

    def _create(self, w: World, user_id: str | None) -> Record:
        at = iso_ms(w.clock.tick())
        cid = new_id(w.rng, w.dialect.prefixes.get("con_", "con_"))  # the dialect's prefix
        rec: Record = {"id": cid, "email": None, "external_id": user_id,
                       "traits": {}, "tags": [], "created_at": at, "updated_at": at}
        fresh = self._indexed == len(w.contacts.rows)
        w.contacts.insert(rec)
        w.scores[rec["id"]] = {"engagement": 0, "lead": 0}
        if fresh:  # the index still covers every contact
            self._indexed += 1
        return rec

    @staticmethod
    def _adopt(w: World, batch: Batch, c: Record, user_id: str) -> None:
        """An anonymous (or aliased) contact takes `user_id`: its events' user_id follows."""
        batch.flush()
        c["external_id"] = user_id
        c["updated_at"] = iso_ms(w.clock.tick())
        w.contacts.touch(c["id"])
        w.events.reassign(c["id"], c["id"], user_id)


def state(w: World) -> IngestState:
    if w.ingest is None:
        w.ingest = IngestState()
    st: IngestState = w.ingest
    return st


# ---- checking ----------------------------------------------------------------------------
def check(kind: str, msg: dict[str, Any], path: str = "") -> None:
    """The checks beyond the document's schema (a 422 naming the field)."""
    def field(name: str) -> str:
        return f"{path}.{name}" if path else name

    if kind == "alias":
        return
    if not msg.get("user_id") and not msg.get("anonymous_id"):
        raise invalid(field("user_id"), "or 'anonymous_id' is required")
    if kind == "track":
        name = msg["event"]
        if name.startswith("$") and name not in RESERVED:
            raise invalid(field("event"), "starts with '$', which is reserved for system events "
                          "(use a name without '$')")
    props = msg.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise invalid(field("properties"), "must be an object")
        if len(props) > MAX_PROPERTIES:
            raise invalid(field("properties"), f"has more than {MAX_PROPERTIES} keys")
        for k, v in props.items():
            if len(freeze(v)) > MAX_VALUE_BYTES:
                raise invalid(field(f"properties.{k}"), "is larger than 10 KB")
    for name in ("traits", "context"):
        if msg.get(name) is not None and not isinstance(msg[name], dict):
            raise invalid(field(name), "must be an object")
    if "timestamp" in msg:
        ts = _timestamp(msg["timestamp"])
        if ts is None:
            raise invalid(field("timestamp"), "must be an ISO 8601 date-time with an offset, "
                          "years 1000 to 9999 (e.g. 2026-02-20T14:22:00Z)")


def _timestamp(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        ms = parse_ms(value)
    except (ValueError, OverflowError):
        return None
    return ms if _MIN_MS <= ms <= _MAX_MS else None


# ---- accepting and processing -------------------------------------------------------------
def accept(w: World, kind: str, msg: dict[str, Any], ip: str, user_agent: str) -> bool:
    """Queue one checked message received now. False when it is a duplicate (discarded)."""
    now = w.clock.now()
    mid = msg.get("message_id")
    if mid is not None and state(w).duplicate(str(mid), now):
        return False
    w.receive(now, lambda world, batch: _process(world, batch, kind, msg, now, ip, user_agent))
    return True


def _process(w: World, batch: Batch, kind: str, msg: dict[str, Any], received: int, ip: str,
             user_agent: str) -> None:
    st = state(w)
    if kind == "alias":
        st.alias(w, batch, msg["previous_id"], msg["user_id"])
        return
    c = st.resolve(w, batch, msg.get("user_id"), msg.get("anonymous_id"))
    traits = msg.get("traits") or {}
    if kind == "identify" and traits:
        for k, v in traits.items():  # shallow merge; null deletes the key
            if v is None:
                c["traits"].pop(k, None)
            else:
                c["traits"][k] = v
        if isinstance(traits.get("email"), str):
            c["email"] = traits["email"]
        c["updated_at"] = iso_ms(w.clock.tick())
        w.contacts.touch(c["id"])
    etype, name = _EVENTS[kind]
    props: dict[str, Any]
    if kind == "identify":
        props = {"traits": traits}
    elif kind == "group":
        props = {"group_id": msg["group_id"], "traits": traits}
    else:
        props = dict(msg.get("properties") or {})
        if kind == "page" and msg.get("name") is not None:
            props.setdefault("name", msg["name"])
    ctx: dict[str, Any] = {"ip": None, "user_agent": None, "locale": None, "page": None,
                           "library": None, "campaign": None, **(msg.get("context") or {})}
    if ctx["ip"] == "auto":
        ctx["ip"] = ip
    if ctx["user_agent"] == "auto":
        ctx["user_agent"] = user_agent
    ts = _timestamp(msg["timestamp"]) if "timestamp" in msg else received
    assert ts is not None  # checked at receipt
    eid = new_id(w.rng, w.dialect.prefixes.get("evt_", "evt_"))
    ev = {"id": eid, "type": etype, "contact_id": c["id"], "user_id": c["external_id"],
          "anonymous_id": msg.get("anonymous_id"), "event": name or msg["event"],
          "properties": props, "context": ctx, "timestamp": iso_ms(ts),
          "received_at": iso_ms(received),
          "message_id": msg.get("message_id") or f"msg_{w.rng.getrandbits(64):016x}",
          "tenant_id": w.project["project_id"]}
    batch.add((ts, eid, c["id"], ev["event"], ev))


def too_large(raw: bytes) -> ApiError | None:
    if len(raw) > MAX_BODY_BYTES:
        return ApiError(413, "payload_too_large",
                        f"the body is {len(raw)} bytes: at most 500 KB (512000 bytes) per request;"
                        " split the batch")
    return None
