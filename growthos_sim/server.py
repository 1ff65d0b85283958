"""The HTTP layer: one request pipeline for every `/v1` call, plus the document and `/_sim/`.

Pipeline: latency -> route -> fault -> auth -> rate limit -> scope -> handler -> response with
the rate-limit headers. Errors always leave in the documented envelope with a `request_id`.
"""

from __future__ import annotations

import email.utils
import itertools
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from .auth import authenticate, require_scope
from .errors import ApiError
from .routing import Request, Response
from .validate import check_body

if TYPE_CHECKING:
    from .app import SimServer

_REQ_COUNTER = itertools.count(1)


def _request_id() -> str:
    return f"req_{next(_REQ_COUNTER):020d}"


_DATE_CACHE: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The `Date` header value (RFC 7231, whole seconds), formatted once per second."""
    global _DATE_CACHE
    now = int(time.time())
    cached = _DATE_CACHE
    if cached[0] != now:
        cached = _DATE_CACHE = (now, email.utils.formatdate(now, usegmt=True))
    return cached[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: small responses leave at once
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, OPTIONS, QUERY, ...) gets the API's 405 with `Allow`, not
        # the standard library's 501 HTML page.
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    # ---- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        """Write the whole response (status line, headers, body) in one `send`.

        The same bytes `send_response` + `send_header` + `end_headers` + a body write would
        produce, but one syscall instead of two, so Nagle's algorithm never holds the body back
        waiting for the client's delayed ACK of the headers (a 40 ms stall per request).
        """
        if self.request_version == "HTTP/0.9":  # no status line or headers in HTTP/0.9
            if body:
                self.wfile.write(body)
            return
        reason = self.responses[status][0] if status in self.responses else ""
        head = [f"{self.protocol_version} {status} {reason}\r\n",
                f"Server: {self.version_string()}\r\n", f"Date: {_http_date()}\r\n"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}\r\n")
            if k.lower() == "connection" and v.lower() in ("close", "keep-alive"):
                self.close_connection = v.lower() == "close"
        if body is None:
            head.append("Content-Length: 0\r\n\r\n")
            self.wfile.write("".join(head).encode("latin-1"))
            return
        head.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        self.wfile.write("".join(head).encode("latin-1") + body)

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None when the framing is broken."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        raw_len = self.headers.get("Content-Length")
        try:
            n = int(raw_len) if raw_len else 0
        except ValueError:
            return None
        if n < 0:
            return None
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        raw = self._read_body()
        if raw is None:
            # The body's length is unknowable: answer, then close (the stream is out of sync).
            self.close_connection = True
            self._send(400, orjson.dumps(ApiError(
                400, "invalid_request", "malformed Content-Length or chunked body"
            ).body(_request_id())), {"Connection": "close"})
            return
        if url.path.startswith("/v1/") and sim.ingest.owns(url.path[3:]):
            status, body, headers = sim.ingest.handle(
                sim, self.command, url.path[3:],
                dict(parse_qsl(url.query, keep_blank_values=True)), self.headers, raw,
                self.client_address[0], _request_id())
            self._send(status, body, headers)
        elif url.path.startswith("/v1/") or url.path == "/v1":
            # Blank values are kept: `?created_before=` is an invalid value, not an absent one.
            self._api(sim, url.path[3:] or "/", dict(parse_qsl(url.query, keep_blank_values=True)),
                      raw)
        elif url.path == "/openapi/management.yaml" and self.command == "GET":
            self._send(200, sim.document_bytes, content_type="application/yaml")
        elif url.path == "/openapi/ingest.yaml" and self.command == "GET":
            self._send(200, sim.ingest.document_bytes, content_type="application/yaml")
        elif url.path.startswith("/_sim/"):
            if self.client_address[0] not in ("127.0.0.1", "::1") and not \
                    self.client_address[0].startswith("127."):
                self._send(403, b'{"error":"the control plane answers loopback clients only"}')
                return
            status, body, ctype = sim.control.handle(self.command, url.path[6:],
                                                     dict(parse_qsl(url.query)), raw)
            self._send(status, body, content_type=ctype)
        else:
            rid = _request_id()
            self._send(404, orjson.dumps(ApiError(404, "not_found", "no such path").body(rid)))

    def _api(self, sim: SimServer, path: str, params: dict[str, str], raw: bytes) -> None:
        rid = _request_id()
        stats = sim.stats
        stats.count("requests")
        faults = sim.faults
        latency = sim.latency_ms + faults.config.latency_ms
        if latency:
            time.sleep(latency / 1000)
        fault = faults.draw(self.command, path, params)
        if fault == "disconnect":
            stats.count("fault_disconnect")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        rate_headers: dict[str, str] = {}
        try:
            route, path_params, exists = sim.router.match(self.command, path)
            key = authenticate(sim.world, self.headers.get("Authorization"), params)
            allowed, rate_headers = sim.limiter.hit(key.token)
            if not allowed:
                stats.count("rate_limited")
                raise ApiError(429, "rate_limited", "rate limit exceeded: retry after the "
                               "Retry-After delay", headers={"Retry-After":
                                                             rate_headers.pop("Retry-After")})
            if fault == "error":
                stats.count("fault_error")
                raise ApiError(500, "internal_error", "internal server error: retry is safe")
            if fault == "rate_limit":
                stats.count("fault_rate_limit")
                raise ApiError(429, "rate_limited", "rate limit exceeded: retry after the "
                               "Retry-After delay",
                               headers={"Retry-After": str(faults.config.retry_after_s)})
            if route is None:
                if exists:
                    raise ApiError(405, "method_not_allowed",
                                   f"{self.command} is not supported on {path}",
                                   headers={"Allow": ", ".join(sim.router.allowed(path))})
                raise ApiError(404, "not_found", f"no such path: {path}")
            if fault == "cursor_expiry":
                stats.count("fault_cursor_expiry")
                raise ApiError(400, "cursor_expired",
                               "the cursor has expired: restart the walk without it")
            require_scope(key.scopes, route.scope)
            body: Any = None
            if route.body_schema is not None:
                body = check_body(sim.router, route.body_schema, raw)
                if isinstance(body, dict):
                    body = faults.filtered(body, body=True)
            req = Request(self.command, route.op_id, faults.filtered(params), path_params, body,
                          key, sim.world, rid, sim.cursors)
            with sim.world.lock:
                sim.world.process_due()  # queued ingest work whose time has come is visible
                key.record["last_used_at"] = sim.now_iso()
                sim.world.api_keys.touch(key.record["id"])
                try:
                    resp = sim.handlers[route.op_id](req)
                finally:
                    if self.command != "GET":
                        sim.world.changed()
                if sim.dialect.renders and resp.status < 300 and resp.body is not None:
                    # The dialect's shapes, rendered at the edge (dialect.py); reads the world.
                    resp.body = sim.dialect.render(route.op_id, self._encode(resp, rid) or b"",
                                                   sim.world)
        except Exception as exc:  # noqa: BLE001 (a bug must still answer in the envelope)
            e = exc if isinstance(exc, ApiError) else ApiError(
                500, "internal_error", "internal server error: retry is safe")
            if not isinstance(exc, ApiError):
                traceback.print_exc()
            if e.status == 401:
                rate_headers = sim.limiter.hit("anonymous:" + self.client_address[0])[1]
                rate_headers.pop("Retry-After", None)
            stats.count(f"status_{e.status}")
            self._send(e.status, orjson.dumps(e.body(rid)), {**rate_headers, **e.headers})
            return
        stats.count(f"status_{resp.status}")
        body_bytes = self._encode(resp, rid)
        if fault == "truncate" and body_bytes:
            stats.count("fault_truncate")
            body_bytes = body_bytes[: max(1, len(body_bytes) // 2)]
        elif fault == "non_json" and resp.status == 200:
            stats.count("fault_non_json")
            self._send(200, b"<html><body>Service temporarily unavailable</body></html>",
                       rate_headers, content_type="text/html")
            return
        elif fault in ("empty_page", "repeat_cursor") and body_bytes \
                and body_bytes.startswith(b'{"data":['):
            stats.count(f"fault_{fault}")
            body_bytes = self._misbehaving_page(fault, body_bytes, params["cursor"], rid)
        elif "cursor" in params and body_bytes and body_bytes.startswith(b'{"data":[') \
                and b'"has_more":false' in body_bytes and faults.endless():
            stats.count("fault_endless_page")
            body_bytes = self._misbehaving_page("endless_page", body_bytes, params["cursor"], rid)
        self._send(resp.status, body_bytes, {**rate_headers, **resp.headers})

    _fresh = itertools.count(1)

    def _misbehaving_page(self, fault: str, body: bytes, cursor: str, rid: str) -> bytes:
        if fault == "empty_page":
            # Nothing this time, "try again" with a new cursor string for the same position.
            again = f"{cursor.split('~', 1)[0]}~{next(self._fresh)}"
            return orjson.dumps({"data": [], "has_more": True, "next_cursor": again,
                                 "request_id": rid})
        page = orjson.loads(body)
        if fault == "endless_page":
            # The list never ends: "more" behind a fresh cursor that serves this page again.
            page["has_more"] = True
            page["next_cursor"] = f"{cursor.split('~', 1)[0]}~{next(self._fresh)}"
        elif page.get("has_more"):
            page["next_cursor"] = cursor  # the page again points at itself: a loop
        return orjson.dumps(page)

    @staticmethod
    def _encode(resp: Response, rid: str) -> bytes | None:
        if resp.body is None:
            return None
        if isinstance(resp.body, bytes):
            return resp.body
        return orjson.dumps({**resp.body, "request_id": rid})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    sim: SimServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (killed, timed out) is normal for an API server;
        # anything else is still printed.
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def serve(sim: SimServer, host: str, port: int) -> tuple[_HTTPServer, threading.Thread]:
    """Bind and serve in a background thread; returns the server and its thread."""
    httpd = _HTTPServer((host, port), Handler)
    httpd.sim = sim
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                         name="growthos-sim", daemon=True)
    t.start()
    return httpd, t
