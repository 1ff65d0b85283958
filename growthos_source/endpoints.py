"""Endpoint settings as data: one entry per warehouse table.

The source builds one dlt resource (or transformer) per entry, so adding an endpoint is one
entry here. Table names are part of the contract with the local server's truth endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["parent", "list", "passthrough", "child", "object", "objects_by_id",
               "child_object", "events", "daily_counts", "profiles"]


@dataclass(frozen=True)
class Shape:
    """Another shape the API may send a table's records in (the public docs' examples and our
    document disagree), told apart by a field those records lack. Such a record is conformed to
    the table's one set of columns, so users' SQL never depends on the API's shape."""

    lacks: str  # the field whose absence marks the other shape
    rename: tuple[tuple[str, str], ...]  # (field as sent, column) pairs
    keep: tuple[str, ...] = ()  # when set, the only columns kept (the rest is another table's)


@dataclass(frozen=True)
class Endpoint:
    """How one table is read and loaded.

    kind:
      parent        a hidden walk of every live record of a list (not loaded itself): children
                    need all parents every run, while the parents' tables load only changes
      list          a paginated top-level list loaded as is (GET /settings/keys)
      passthrough   the table of a parent walk's records (GET /contacts -> contacts)
      child         a paginated list per parent record (GET /surveys/{id}/responses); the
                    path's `{<parent_field>}` is the parent record's value of that field
      child_object  one object per parent record (GET /campaigns/{id}/stats)
      object        one object per run (GET /settings)
      objects_by_id one object per configured id (GET /waitlists/{id}); `ids_arg` names the
                    source argument holding the ids (the API cannot list these objects)
      events        the event stream, walked by time window with server-side from/to
      daily_counts  POST /analytics/query event_count by day and event
      profiles      GET /contacts/{id} for the contacts that changed since the last profile read
    """

    table: str
    path: str
    scope: str
    primary_key: tuple[str, ...] = ("id",)
    write_disposition: Literal["merge", "replace", "append"] = "merge"
    kind: Kind = "list"
    cursor: str | None = None  # incremental field; kept per parent for children
    parent: str | None = None  # the resource whose records feed this one
    parent_key: str | None = None  # column added to child rows naming the parent
    parent_field: str = "id"  # field of the parent record used in the child's path
    parent_param: str | None = None  # parent id sent as this query parameter instead
    ids_arg: str | None = None
    deletes: bool = False  # parent walked whole every run: detect records that vanished
    cascade: tuple[tuple[str, str], ...] = ()  # (table, column) rows that die with a record
    refresh_on: tuple[str, ...] = ()  # re-load a record when these fields change
    opt_in: bool = False  # not loaded unless asked for by name
    # parent walks: read in concurrent created_at windows (the list filters by created_at)
    windowed: bool = False
    # snapshot objects: this column is set to the run's start time (their primary key)
    stamp: str | None = None
    columns: dict[str, dict[str, object]] = field(default_factory=dict)
    shapes: tuple[Shape, ...] = ()
    # Records may come without the `cursor` field (the docs' delivery logs have no created_at):
    # a page of such records is compared with the warehouse on `refresh_on` instead of the mark.
    mark_optional: bool = False
    # Rows leave as arrow tables (arrowize.py), skipping dlt's row normalizer: for big flat
    # lists read whole every run (the nightly run's normalize was mostly these rows).
    arrow: bool = False
    # Child lists: the parent record's field that counts the list's rows (a segment's
    # `contact_count`). Only schedules the walks, longest first (http/fanout.py), so that a run
    # does not end on a few long lists read one page at a time; a missing or odd value is
    # a list of unknown length, never an error.
    size_field: str | None = None


# Every table whose records can vanish keeps a `_deleted_at` column (see deletes.py).
DELETED_AT: dict[str, dict[str, object]] = {"_deleted_at": {"data_type": "timestamp",
                                                           "nullable": True}}


def _nullable(*names: str) -> dict[str, dict[str, object]]:
    """Timestamp columns that exist even when one shape of the API never sends them."""
    return {n: {"data_type": "timestamp", "nullable": True} for n in names}


# The docs' contacts name the external identifier `user_id` (their OpenAPI skeleton); our
# document and the docs' examples say `external_id`. One column: `external_id`.
CONTACT_SHAPES = (Shape("external_id", (("user_id", "external_id"),)),)


def _parent(name: str, path: str, scope: str, windowed: bool = False) -> Endpoint:
    return Endpoint(name, path, scope, kind="parent", windowed=windowed)


ENDPOINTS: tuple[Endpoint, ...] = (
    _parent("_contacts_all", "/contacts", "contacts:read", windowed=True),
    _parent("_segments_all", "/segments", "segments:read"),
    _parent("_programs_all", "/referrals/programs", "referrals:read"),
    _parent("_campaigns_all", "/campaigns", "campaigns:read"),
    _parent("_surveys_all", "/surveys", "surveys:read"),
    _parent("_webhooks_all", "/webhooks/endpoints", "webhooks:read"),
    Endpoint("contacts", "/contacts", "contacts:read", kind="passthrough", parent="_contacts_all",
             cursor="updated_at", deletes=True, cascade=(("contact_profiles", "id"),),
             columns=DELETED_AT, shapes=CONTACT_SHAPES),
    Endpoint("contact_profiles", "/contacts/{id}", "contacts:read", kind="profiles",
             parent="_contacts_all", cursor="updated_at", opt_in=True, columns=DELETED_AT,
             shapes=CONTACT_SHAPES),
    Endpoint("segments", "/segments", "segments:read", kind="passthrough",
             parent="_segments_all", cursor="updated_at", deletes=True, columns=DELETED_AT),
    # The docs: "returns paginated contacts" (contact objects); our document: member rows
    # {contact_id, email, added_at}. Either way a row per member; the contact's other fields
    # are the contacts table's, and added_at stays null when the API does not say.
    Endpoint("segment_memberships", "/segments/{id}/contacts", "segments:read",
             ("segment_id", "contact_id"), "replace", kind="child", parent="_segments_all",
             parent_key="segment_id", columns=_nullable("added_at"), size_field="contact_count",
             shapes=(Shape("contact_id", (("id", "contact_id"),),
                           keep=("contact_id", "email", "added_at")),), arrow=True),
    Endpoint("referral_programs", "/referrals/programs", "referrals:read", kind="passthrough",
             parent="_programs_all", cursor="updated_at"),
    Endpoint("referral_links", "/referrals/programs/{id}/links", "referrals:read", kind="child",
             parent="_programs_all", cursor="created_at", refresh_on=("conversions", "clicks")),
    Endpoint("referral_conversions", "/referrals/links/{code}/conversions", "referrals:read",
             kind="child", parent="referral_links", parent_field="code",
             size_field="conversions"),
    Endpoint("referral_leaderboard", "/referrals/leaderboard", "referrals:read",
             ("program_id", "contact_id"), "replace", kind="child", parent="_programs_all",
             parent_key="program_id", parent_param="program_id"),
    Endpoint("campaigns", "/campaigns", "campaigns:read", kind="passthrough",
             parent="_campaigns_all", cursor="updated_at"),
    Endpoint("campaign_stats", "/campaigns/{id}/stats", "campaigns:read", ("campaign_id",),
             kind="child_object", parent="_campaigns_all"),
    Endpoint("surveys", "/surveys", "surveys:read", kind="passthrough", parent="_surveys_all",
             cursor="updated_at"),
    Endpoint("survey_responses", "/surveys/{id}/responses", "surveys:read", kind="child",
             parent="_surveys_all", cursor="responded_at", parent_key="survey_id"),
    Endpoint("survey_stats", "/surveys/{id}/stats", "surveys:read", ("survey_id",),
             kind="child_object", parent="_surveys_all"),
    Endpoint("waitlists", "/waitlists/{id}", "waitlists:read", kind="objects_by_id",
             ids_arg="waitlist_ids"),
    Endpoint("waitlist_entries", "/waitlists/{id}/entries", "waitlists:read", kind="child",
             parent="waitlists", parent_key="waitlist_id"),
    Endpoint("webhook_endpoints", "/webhooks/endpoints", "webhooks:read", kind="passthrough",
             parent="_webhooks_all", cursor="updated_at", deletes=True,
             cascade=(("webhook_deliveries", "endpoint_id"),), columns=DELETED_AT),
    # The docs' delivery logs have no created_at, and no other field only grows: such a list is
    # read whole every run (a few hundred rows per endpoint: logs are kept for retries) and a
    # record loads when it is new or its status/attempt changed (a retry).
    Endpoint("webhook_deliveries", "/webhooks/endpoints/{id}/logs", "webhooks:read",
             kind="child", parent="_webhooks_all", cursor="created_at", parent_key="endpoint_id",
             columns={**DELETED_AT, **_nullable("created_at")}, mark_optional=True,
             refresh_on=("status", "attempt")),
    # Append, not merge: windows are disjoint, marks exclude the ids already read at the mark's
    # instant, and a restarted walk drops what it read (walks.py), so a run never re-reads an
    # event. A merge would join every load against the whole table: memory and time growing
    # with the warehouse (a 128MB-capped DuckDB ran out of memory in it at 1,000,000 events).
    Endpoint("events", "/analytics/events", "events:read", write_disposition="append",
             kind="events", cursor="timestamp"),
    Endpoint("analytics_overview", "/analytics/overview", "analytics:read", ("synced_at",),
             "append", kind="object", stamp="synced_at"),
    Endpoint("daily_event_counts", "/analytics/query", "analytics:read", ("date", "event"),
             kind="daily_counts"),
    Endpoint("funnels", "/analytics/funnels/{id}", "analytics:read", write_disposition="replace",
             kind="objects_by_id", ids_arg="funnel_ids"),
    Endpoint("cohorts", "/analytics/cohorts/{id}", "analytics:read", write_disposition="replace",
             kind="objects_by_id", ids_arg="cohort_ids"),
    Endpoint("project_settings", "/settings", "settings:read", ("project_id",), "replace",
             kind="object"),
    Endpoint("api_keys", "/settings/keys", "settings:read", write_disposition="replace"),
)

BY_TABLE = {e.table: e for e in ENDPOINTS}


def root_table(ep: Endpoint) -> str:
    """The top-level resource whose walk feeds `ep` (itself when it has no parent)."""
    while ep.parent is not None:
        ep = BY_TABLE[ep.parent]
    return ep.table


def user_tables(table: str, selected: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The tables a user can name that are `table` or read through it: a hidden parent walk
    (`_campaigns_all`) stands for the tables it feeds (`campaigns`, `campaign_stats`).
    `selected` limits them to the ones being loaded."""
    out = []
    for ep in ENDPOINTS:
        if ep.table.startswith("_") or (selected is not None and ep.table not in selected):
            continue
        e: Endpoint | None = ep
        while e is not None:
            if e.table == table:
                out.append(ep.table)
                break
            e = BY_TABLE[e.parent] if e.parent else None
    return tuple(out)
