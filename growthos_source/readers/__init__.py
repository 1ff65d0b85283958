"""The generator behind each kind of endpoint. `source.py` wraps these in dlt resources.

Every reader takes a `Context` (client, options) and the endpoint settings. Incremental marks
are kept in the source state per table (`table_marks`), per parent for child lists. The modules:
`context` (what readers share), `parents` (top-level list walks and their tables), `children`
(lists and objects per parent record, profiles), `objects` (single objects, objects by id, the
daily counts query).
"""

from __future__ import annotations

from .children import child, child_object, profiles
from .context import Context, Row, Tally, WalkComplete, fresh, table_marks
from .objects import read_by_id, read_daily_counts, read_object
from .parents import passthrough, read_list, read_parent
from .pool import finish_on_pool

__all__ = ["Context", "Row", "Tally", "WalkComplete", "child", "child_object",
           "finish_on_pool", "fresh",
           "passthrough", "profiles", "read_by_id", "read_daily_counts", "read_list",
           "read_object", "read_parent", "table_marks"]
