"""When a DuckDB warehouse writes its log into the database file during a sync.

DuckDB commits to a write-ahead log and moves the log into the database file (a checkpoint)
when the log passes `checkpoint_threshold` at a commit (dlt sets it to 1 GB), or when the
database's last connection closes. dlt closes its connection after every load, and every
warehouse step of ours opens and closes one, so a nightly sync checkpointed three or four times,
each on its critical path with nothing else running: after the main load (the
`segment_memberships` replace, the appended events), after the re-read ranges were replaced
(DuckDB's vacuum rewrites the `events` row groups that lost rows), after re-attribution's load
and after the ledger's.

`deferred()` holds a connection of its own until the sync ends, so those closes are not the
database's last. `Deferral.start()` checkpoints on a thread of its own while the sync's next
step reads the API (re-attributing merged contacts' events); what was written after it is
checkpointed when the sync ends, without the vacuum (see `_checkpoint_without_vacuum`). DuckDB
runs reads beside a checkpoint and makes writes wait for it: what is written and in which order
does not change, only when it reaches the file. A checkpoint that cannot run now (another
connection is writing) is left to the close, as before; a process killed before a checkpoint
leaves the log, which DuckDB replays when the file is opened next.

Other destinations have no such step: there `deferred()` holds nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dlt
import duckdb

from .ops import destination_type

logger = logging.getLogger("growthos_source")


@dataclass
class Deferral:
    """A held DuckDB connection (None for other destinations, or when it cannot be held)."""

    connection: Any = None
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        """Checkpoint now on a thread of its own (once; nothing for other destinations)."""
        if self.connection is None or self.thread is not None:
            return
        cursor = self.connection.cursor()  # a connection is used by one thread at a time

        def run() -> None:
            try:
                cursor.execute("CHECKPOINT")
            except duckdb.Error as exc:  # busy, say: the close checkpoints instead
                self.errors.append(exc)
            finally:
                cursor.close()

        self.thread = threading.Thread(target=run, name="growthos-checkpoint", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Wait for a running checkpoint, checkpoint what was written since, and close the
        connection (without a background checkpoint, DuckDB checkpoints at the close when the
        connection was the database's last, as it always has)."""
        if self.connection is None:
            return
        try:
            if self.thread is not None:
                self.thread.join()
                self._checkpoint_without_vacuum()
            for exc in self.errors:
                logger.debug("DuckDB checkpoint during the sync did not run (%s); it runs "
                             "when the database closes", exc)
        finally:
            self.connection.close()
            self.connection = None

    def _checkpoint_without_vacuum(self) -> None:
        """The last checkpoint of a sync that checkpointed in the background: without
        DuckDB's vacuum, which rewrites the row groups of `events` that the replacement of
        re-read ranges left with deleted rows (see docs/performance.md). The background
        checkpoint of the next such sync vacuums them, off the critical path; until then they
        are deleted rows DuckDB skips. The setting is DuckDB's, for the whole database: it is
        put back before the connection closes, in case another connection keeps it open."""
        conn = self.connection
        try:
            (old,), = conn.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()
            conn.execute("SET max_vacuum_tasks = 0")
        except duckdb.Error as exc:  # a DuckDB without the setting: the close vacuums
            self.errors.append(exc)
            return
        for statement in ("CHECKPOINT", f"SET max_vacuum_tasks = {int(old)}"):
            try:
                conn.execute(statement)
            except duckdb.Error as exc:  # busy: the close checkpoints (and vacuums) instead
                self.errors.append(exc)


@contextmanager
def deferred(pipeline: dlt.Pipeline) -> Iterator[Deferral]:
    """Hold `pipeline`'s DuckDB database open for the block (see the module docstring)."""
    deferral = Deferral(_hold(pipeline))
    try:
        yield deferral
    finally:
        deferral.close()


def _hold(pipeline: dlt.Pipeline) -> Any:
    """A connection to the pipeline's DuckDB file, or None when the destination is not a
    DuckDB file this process can open."""
    if destination_type(pipeline) != "duckdb":
        return None
    try:
        # dlt resolves where the file is (a relative path, `:pipeline:`): ask its connection.
        with pipeline.sql_client() as client:
            rows = client.execute_sql("SELECT path FROM duckdb_databases() "
                                      "WHERE database_name = current_database()")
            path = rows[0][0] if rows else None
            if not path:  # an in-memory database: no file, no checkpoint
                return None
            # The same file (and no settings of its own) is the same database dlt loads into.
            return duckdb.connect(str(path))
    except Exception as exc:  # noqa: BLE001  the hold only moves checkpoints: without it
        # (a connection the user passed in, a file another process locked) the sync goes on
        # as it always did, and dlt reports a warehouse it cannot open when it loads.
        logger.debug("not holding the DuckDB database during the sync: %s", exc)
        return None
