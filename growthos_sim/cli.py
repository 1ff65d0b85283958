"""`python -m growthos_sim` / `growthos-sim`: run the local GrowthOS server."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from .api.ingest import DEFAULT_WRITE_KEY
from .generate import DEFAULT_KEY
from .ratelimit import PLANS
from .util import parse_duration_ms


def _key(text: str) -> tuple[str, list[str]]:
    token, sep, scopes = text.partition("=")
    if not sep or not token or not scopes:
        raise argparse.ArgumentTypeError("use --key TOKEN=SCOPE,SCOPE (e.g. gos_sk_ro=contacts:read)")
    return token, [s.strip() for s in scopes.split(",") if s.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="growthos-sim", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one (default 8787)")
    p.add_argument("--seed", type=int, default=7, help="data seed (default 7)")
    p.add_argument("--contacts", type=int, default=5000, help="contacts to generate (default 5000)")
    p.add_argument("--events", type=int, default=50000, help="events to generate (default 50000)")
    p.add_argument("--plan", choices=list(PLANS), default="scale",
                   help="rate-limit plan per key: free 10, growth 50, scale 100 req/s, unlimited")
    p.add_argument("--latency-ms", type=int, default=0, help="added to every API response")
    p.add_argument("--dialect", choices=["document", "docs"], default="document",
                   help="shapes to serve: our OpenAPI document's (default) or the public docs' "
                        "where they differ (docs/api-shapes.md)")
    p.add_argument("--key", type=_key, action="append", default=[], metavar="TOKEN=SCOPES",
                   help=f"accepted key and its scopes (repeatable; default {DEFAULT_KEY}=*)")
    p.add_argument("--write-key", action="append", default=[], metavar="gos_wk_...",
                   type=_write_key,
                   help=f"another accepted Ingest API write key (repeatable; {DEFAULT_WRITE_KEY} always works)")
    p.add_argument("--processing-delay", type=_delay, default="5s", metavar="DURATION",
                   help="server time from an Ingest API call's receipt until it is visible "
                        "(default 5s; 0s: at once). Server time moves with /_sim/mutate advance.")
    return p.parse_args(argv)


def _write_key(text: str) -> str:
    if not text.startswith("gos_wk_") or len(text) <= len("gos_wk_"):
        raise argparse.ArgumentTypeError("a write key starts with gos_wk_ (e.g. gos_wk_mykey)")
    return text


def _delay(text: str) -> int:
    if text.strip() in ("0", "0s"):
        return 0
    try:
        return parse_duration_ms(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .app import SimServer

    t0 = time.time()
    sim = SimServer(seed=args.seed, contacts=args.contacts, events=args.events, plan=args.plan,
                    latency_ms=args.latency_ms, keys=dict(args.key) or None, host=args.host,
                    port=args.port, dialect=args.dialect,
                    processing_delay_ms=args.processing_delay,
                    write_keys=[DEFAULT_WRITE_KEY, *args.write_key], freeze_heap=True)
    sim.start()
    print(f"GrowthOS simulator listening on {sim.url} (API {sim.base_url}, "
          f"document {sim.url}/openapi/management.yaml, Ingest API document "
          f"{sim.url}/openapi/ingest.yaml, processing delay {args.processing_delay} ms); "
          f"seed {args.seed}, "
          f"{args.contacts} contacts, {args.events} events, plan {args.plan}, "
          f"dialect {args.dialect}; "
          f"generated in {time.time() - t0:.1f}s", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
