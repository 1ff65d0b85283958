"""Rows of a child list as arrow tables (`Endpoint.arrow`): dlt's row normalizer skipped.

The columns are those the row path gives (arrowize.py: the same flattening, types and variant
columns), plus `_dlt_id`, which dlt's normalizer gives every row it normalizes and arrow
tables do not get: the table keeps the columns it had when it was loaded row by row.
"""

from __future__ import annotations

import threading
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.normalizers.utils import DLT_ID_LENGTH_BYTES
from dlt.common.utils import many_uniq_ids_base64

from ..arrowize import ArrowPages
from ..columns import declared_types
from ..endpoints import Endpoint
from ..page_batch import Batch

DLT_ID = "_dlt_id"
# dlt's own hints for the column its normalizer adds.
DLT_ID_HINT: dict[str, Any] = {"name": DLT_ID, "data_type": "text", "nullable": False,
                               "unique": True, "row_key": True}
BATCH_ROWS = 10_000


class ArrowRows:
    """Collects a table's rows and hands them over as arrow tables of about BATCH_ROWS rows.
    One per extract: its column types stay stable across the run's batches. Child lists are
    walked on several threads; the conversion takes turns."""

    def __init__(self, ep: Endpoint) -> None:
        schema = dlt.current.source_schema()
        held = schema.tables.get(ep.table, {}).get("columns", {})
        known = {**declared_types(ep.table),
                 **{n: str(c["data_type"]) for n, c in ep.columns.items()
                    if c.get("data_type")},
                 **{n: str(c["data_type"]) for n, c in held.items() if c.get("data_type")}}
        self._pages = ArrowPages(known, schema.naming.normalize_path, required=ep.primary_key,
                                 always=tuple(declared_types(ep.table)))
        self._lock = threading.Lock()

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        batch = Batch()
        batch.add(rows)
        with self._lock:
            t = self._pages.table(batch)
        ids = many_uniq_ids_base64(t.num_rows, DLT_ID_LENGTH_BYTES)
        return t.append_column(pa.field(DLT_ID, pa.string(), nullable=False),
                               pa.array(ids, pa.string()))
