"""Records the API sends in another documented shape, conformed to their table's columns.

The public docs and our OpenAPI document disagree on a few record shapes (`endpoints.Shape`).
The connector takes no setting for this: it tells the shapes apart by the fields a record has,
so the same tables, keys and column names load from either.
"""

from __future__ import annotations

from typing import Any

from .endpoints import Endpoint, Shape

Row = dict[str, Any]


def conform(ep: Endpoint, rows: list[Row]) -> list[Row]:
    """`rows` with every record of another shape conformed (new dicts; the rest as they are)."""
    for shape in ep.shapes:
        lacks = shape.lacks
        if all(not isinstance(r, dict) or lacks in r for r in rows):
            continue  # nearly every page: the table's own shape
        rows = [_conformed(shape, r) if isinstance(r, dict) and lacks not in r else r
                for r in rows]
    return rows


def _conformed(shape: Shape, row: Row) -> Row:
    names = dict(shape.rename)
    if not any(src in row for src in names):
        return row  # not the other shape either: the rejects check judges it as it is
    out = {names.get(k, k): v for k, v in row.items()}
    if shape.keep:
        out = {k: out[k] for k in shape.keep if k in out}
    return out
