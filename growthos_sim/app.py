"""`SimServer`: the local GrowthOS server, startable in-process (tests, demo) or from the CLI."""

from __future__ import annotations

import gc
import secrets
from typing import Any, Self

from .api.ingest import DEFAULT_WRITE_KEY, IngestApi
from .control import Control
from .dialect import Dialect, by_name
from .faults import Faults
from .generate import DEFAULT_KEY
from .pagination import Cursors
from .ratelimit import RateLimiter
from .routing import HANDLERS, Router, load_document
from .seeding import build_world
from .server import serve
from .stats import Stats
from .util import iso_ms
from .world import DEFAULT_PROCESSING_DELAY_MS, World


class SimServer:
    """A running local GrowthOS server on real HTTP.

    `SimServer(seed=7, contacts=1000, events=10000).start()` binds 127.0.0.1 on a free port;
    `base_url` is what a client uses (`http://127.0.0.1:PORT/v1`). Same seed and sizes, same data.
    The Ingest API answers on the same base URL with `write_keys` (default gos_wk_test_local);
    what it accepts becomes visible `processing_delay_ms` of server time after receipt.
    `dialect="docs"` serves the shapes of the public docs where they differ from our document
    (dialect.py); the same seed gives the same data in either, apart from the id prefixes.
    `freeze_heap` (the server as its own process, cli.py) keeps the data out of the cyclic
    garbage collector's passes (see `settle`).
    """

    def __init__(self, *, seed: int = 7, contacts: int = 1000, events: int = 10_000,
                 plan: str = "unlimited", latency_ms: int = 0,
                 keys: dict[str, list[str]] | None = None, host: str = "127.0.0.1",
                 port: int = 0, dialect: str = "document",
                 processing_delay_ms: int = DEFAULT_PROCESSING_DELAY_MS,
                 write_keys: list[str] | None = None, freeze_heap: bool = False) -> None:
        self.freeze_heap = freeze_heap
        self.seed, self.n_contacts, self.n_events = seed, contacts, events
        self.keys = keys or {DEFAULT_KEY: ["*"]}
        self.host, self.port = host, port
        self.latency_ms = latency_ms
        self.dialect: Dialect = by_name(dialect)
        self.limiter = RateLimiter(plan, self.dialect.rate_window_s)
        self.document_bytes, doc = load_document()
        self.router = Router(self.dialect.contract(doc))
        self.handlers = HANDLERS
        # The Ingest API (same server and port); write keys gos_wk_..., never secret keys.
        self.ingest = IngestApi(plan, write_keys or [DEFAULT_WRITE_KEY])
        self.cursors = Cursors(secrets.token_bytes(32))
        self.faults = Faults()
        self.stats = Stats()
        self.control = Control(self)
        if processing_delay_ms < 0:
            raise ValueError("processing_delay_ms must be >= 0")
        self.processing_delay_ms = processing_delay_ms
        self.world: World = self._build()
        self.settle()
        self._httpd: Any = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        self._httpd, self._thread = serve(self, self.host, self.port)
        self.port = self._httpd.server_address[1]
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    # ---- control ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, contacts: int | None = None,
              events: int | None = None) -> None:
        """Rebuild the data from the seed, clear faults and counters (cursors stay valid only
        for the new data)."""
        self.seed = self.seed if seed is None else int(seed)
        self.n_contacts = self.n_contacts if contacts is None else int(contacts)
        self.n_events = self.n_events if events is None else int(events)
        world = self._build()
        with self.world.lock:
            self.world = world
        self.faults = Faults()
        self.stats.reset()
        self.settle()

    def settle(self) -> None:
        """With `freeze_heap`: collect the garbage a rebuild or change of the data left, then
        move every object alive to the collector's permanent generation. At full scale the
        data is ~1.7 GB of objects, and each pass over the oldest generation walked all of
        them, stopping every request for 0.8-1.3 s a few times a minute; a client measured
        against such a server was measured against its pauses. Called after the control
        plane's writes (control.py), outside any client's timed requests."""
        if not self.freeze_heap:
            return
        gc.unfreeze()  # what a rebuild replaced is garbage now, and collectable again
        gc.collect()
        gc.freeze()

    def _build(self) -> World:
        world = build_world(self.seed, self.n_contacts, self.n_events, self.keys, self.dialect)
        world.processing_delay_ms = self.processing_delay_ms
        return world

    def now_iso(self) -> str:
        return iso_ms(self.world.clock.now())

    def info(self) -> dict[str, Any]:
        w = self.world
        with w.lock:
            return {"seed": self.seed, "contacts": len(w.contacts), "events": len(w.events),
                    "plan": self.limiter.plan, "dialect": self.dialect.name,
                    "now": self.now_iso(),
                    "processing_delay_ms": w.processing_delay_ms, "pending": len(w.queue),
                    "waitlist_ids": [r["id"] for r in w.waitlists.iter_live()],
                    "funnel_ids": list(w.funnels), "cohort_ids": list(w.cohorts)}
