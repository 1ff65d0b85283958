"""Opt-in history of records (SCD2): `contacts_history`, one row per version of a contact.

The API only answers the current state of a contact; analysts ask what it was at some moment
("what plan was this contact on when they converted?"). With `history=["contacts"]` every run
also loads the *whole* list of contacts, as the hidden parent walk reads it anyway, into
`contacts_history` with dlt's `scd2` merge strategy: a contact whose content changed gets a new
version, its previous one is closed; a contact that vanished from the API (deleted) has its
current version closed; one that comes back opens a new version. `valid_from`/`valid_to` are the
times of the loads that saw a version first and last replaced it (dlt's boundary timestamp, the
load's start); the current version has `valid_to` NULL. The record's own `updated_at` is kept
too.

A whole snapshot is what makes deletes close versions (dlt retires the open versions absent from
the load), so a bounded run (start_date/end_date: a backfill) does not touch the history. The
merge compares the snapshot with the open versions in the warehouse: its cost grows with the
number of contacts, which is why history is opt-in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from . import rejects
from .endpoints import BY_TABLE
from .errors import ConfigurationError
from .readers import Context, WalkComplete

logger = logging.getLogger("growthos_source")

# table -> the hidden parent walk that reads its whole list every run
SUPPORTED = {"contacts": "_contacts_all"}
VALIDITY = ["valid_from", "valid_to"]


def history_table(table: str) -> str:
    return f"{table}_history"


def check(history: Sequence[str] | None) -> list[str]:
    """The tables to keep history of; an unknown name is a configuration error."""
    names = [str(t).strip() for t in (history or []) if str(t).strip()]
    unknown = sorted(set(names) - set(SUPPORTED))
    if unknown:
        raise ConfigurationError(f"history={unknown}: history is kept for "
                                 f"{', '.join(SUPPORTED)} only")
    return names


def build(ctx: Context, built: dict[str, DltResource], tables: Sequence[str]) -> list[DltResource]:
    """One scd2 resource per table, fed by the table's parent walk (see the module doc)."""
    if not tables:
        return []
    if ctx.start_date or ctx.end_date:
        logger.warning("%s: not updated by a run bounded by start_date/end_date (only a whole "
                       "snapshot can tell what was deleted)",
                       ", ".join(history_table(t) for t in tables))
        return []
    return [_resource(ctx, built[SUPPORTED[t]], t) for t in tables]


def _resource(ctx: Context, parent: DltResource, table: str) -> DltResource:
    ep = BY_TABLE[table]

    def versions(items: Any) -> Iterator[Any]:
        if isinstance(items, WalkComplete):
            if not items.whole_list:  # cannot happen without end_date; say so if it does
                logger.warning("%s: the walk did not cover the whole list", history_table(table))
            return
        # The rejects are recorded by the table itself; a version needs a good record.
        rows, _ = rejects.check(ep, items, ctx.run_started)
        if rows:
            yield rows

    res = dlt.transformer(versions, data_from=parent, name=history_table(table))
    res.apply_hints(write_disposition={"disposition": "merge", "strategy": "scd2",
                                       "validity_column_names": VALIDITY})
    return res
