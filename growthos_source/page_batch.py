"""Pages collected for one arrow table, and pyarrow's JSON reader over their response bodies.

When every page of a batch brought its body (walks.PageRows: the client passes a body on only
when orjson read it as it is, decode.py), pyarrow parses the bodies again into one struct
array, outside the GIL on its own threads, rather than typing the dicts the client parsed
(arrowize.py takes either).
"""

from __future__ import annotations

import operator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

# The scalar types `pa.array` gives JSON values; the JSON reader may also infer timestamps from
# strings, and a batch where it did takes the `pa.array` path, so strings stay strings.
_PLAIN = (pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.null())
# JSON strings cannot hold raw control characters, so a CR or LF byte in a body is whitespace;
# one body per line is what the JSON reader needs.
_TO_SPACE = bytes.maketrans(b"\r\n", b"  ")
_MIN_BLOCK = 1 << 20
# The JSON reader's buffers come from the C library's allocator: pyarrow's default (mimalloc)
# keeps what its reader threads freed, which added ~100 MB to the peak of every backfill.
_POOL = pa.system_memory_pool()


class Batch:
    """Rows collected for one arrow table, with the response bodies of the pages they came
    from when every page brought its body (the rows must be some of the page's `data`, the
    same objects, in order; a mask records which)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.bodies: list[bytes] | None = []
        self.mask: list[bool] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows: list[dict[str, Any]], body: bytes | None = None,
            data: list[dict[str, Any]] | None = None) -> None:
        if not rows:
            return
        self.rows.extend(rows)
        if self.bodies is None:
            return
        if body is None or data is None:
            self.bodies = None  # no body (e.g. read ahead and pickled): type the dicts instead
            return
        if len(rows) == len(data) and all(map(operator.is_, rows, data)):
            self.bodies.append(body)  # the whole page, as nearly always
            self.mask.extend([True] * len(rows))
            return
        kept = {id(r) for r in rows}
        mask = [id(r) in kept for r in data]
        chosen = [r for r, m in zip(data, mask) if m]
        if len(chosen) != len(rows) or any(a is not b for a, b in zip(chosen, rows)):
            self.bodies = None  # not the page's own rows in its order: type the dicts instead
            return
        self.bodies.append(body)
        self.mask.extend(mask)


def _plain(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return all(_plain(f.type) for f in t)
    return pa.types.is_list(t) or pa.types.is_large_list(t) or t in _PLAIN


def read_bodies(bodies: list[bytes], mask: list[bool], n: int) -> pa.StructArray | None:
    """The rows of the pages' `data` arrays chosen by `mask`, parsed by pyarrow's JSON reader
    (outside the GIL); None if it cannot, or types a value otherwise than `pa.array` would.
    The bodies are ones orjson read as they are (the client passes on no other, decode.py):
    no number in them is one the reader would round."""
    lines = [b.translate(_TO_SPACE) if b"\n" in b or b"\r" in b else b for b in bodies]
    block = max(_MIN_BLOCK, max(map(len, lines)) + 1)  # a page must fit in one block
    try:
        table = pa_json.read_json(pa.BufferReader(b"\n".join(lines)),
                                  read_options=pa_json.ReadOptions(block_size=block),
                                  memory_pool=_POOL)
        if table.num_rows != len(lines) or "data" not in table.column_names:
            return None
        data = table.column("data").combine_chunks(memory_pool=_POOL)
        if not pa.types.is_list(data.type) or not pa.types.is_struct(data.type.value_type):
            return None
        struct = data.flatten()
        if len(struct) != len(mask):
            return None
        if not all(mask):
            struct = pc.filter(struct, pa.array(mask, pa.bool_()), memory_pool=_POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # a field changes type, or the body is not what orjson read
    return struct if len(struct) == n and _plain(struct.type) else None
