"""The API key never appears anywhere a run writes, and travels only to the configured host.

Syncs run at DEBUG log level with distinctive keys (in-process and as the pipeline script), some
succeeding and some failing (a key lacking a scope, a wrong key, a 5xx storm). Then the test
searches every place a key could leak to: captured logs, stdout and stderr, exception messages,
reprs and tracebacks, `pipeline.last_trace` (str, JSON and pickle), every file under the
pipeline's working directory and DLT_DATA_DIR (load packages, traces, state; gz and parquet
files decoded), and every value of every table in the DuckDB file.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import pickle
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import dlt
import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import control
from pipeline_job import Job
from warehouse import CHECKS, Warehouse

from growthos_source import growthos, sync
from growthos_source.cli_errors import one_line

KEY = "gos_sk_SECRET_canary_123"
READ_ONLY_KEY = "gos_sk_SECRET_canary_ro_456"
WRONG_KEY = "gos_sk_SECRET_canary_wrong_789"
KEYS = {KEY: ["*"], READ_ONLY_KEY: ["contacts:read"]}
# The distinctive part of every canary, raw and as it would look base64-encoded in a header.
NEEDLES = [b"SECRET_canary"] + [base64.b64encode(s.encode()) for s in
                                (KEY, f"Bearer {KEY}", READ_ONLY_KEY, WRONG_KEY)]
QUICK = {"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02}


def leaks(data: bytes | str) -> list[bytes]:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return [n for n in NEEDLES if n in raw]


def test_the_search_finds_a_planted_key() -> None:
    assert leaks(f"Authorization: Bearer {KEY}") and leaks(gzip.decompress(gzip.compress(
        WRONG_KEY.encode()))) and leaks(base64.b64encode(f"Bearer {KEY}".encode()))
    assert not leaks("gos_sk_…_123")


def assert_clean(where: str, data: bytes | str) -> None:
    found = leaks(data)
    assert not found, f"API key found in {where}: {found}"


def exception_texts(exc: BaseException) -> Iterator[tuple[str, str]]:
    yield "str(exception)", str(exc)
    yield "repr(exception)", repr(exc)
    yield "one_line(exception)", one_line(exc)
    yield "traceback", "".join(traceback.format_exception(exc))
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:  # every exception in the chain, its attributes included
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield f"{type(e).__name__} attributes", repr(vars(e)) + repr(e.args)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]


def trace_texts(pipeline: dlt.Pipeline) -> Iterator[tuple[str, bytes | str]]:
    trace = pipeline.last_trace
    assert trace is not None
    yield "str(last_trace)", str(trace)
    yield "last_trace as JSON", json.dumps(trace.asdict(), default=repr)
    yield "last_trace pickled", pickle.dumps(trace)


def file_contents(root: Path) -> Iterator[tuple[str, bytes | str]]:
    """Every file under `root`, decoded where it is compressed or columnar."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield str(path), data
        if path.suffix == ".gz":
            yield f"{path} (gunzipped)", gzip.decompress(data)
        elif path.suffix == ".parquet":
            yield f"{path} (rows)", repr(pq.read_table(path).to_pylist())
        elif path.suffix == ".duckdb":
            yield f"{path} (every value)", warehouse_values(path)


def warehouse_values(db: Path) -> str:
    """Every value of every table of every schema, as text."""
    out: list[str] = []
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_type = 'BASE TABLE'").fetchall()
        assert tables
        for schema, table in tables:
            out.append(repr(con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
    return "\n".join(out)


def test_in_process_runs_at_debug_level_leak_the_key_nowhere(
        make_sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    sim = make_sim(contacts=40, events=200, keys=KEYS)
    wh = Warehouse(tmp_path, sim)
    texts: list[tuple[str, bytes | str]] = []

    wh.sync(resources=tuple(CHECKS), key=KEY, **QUICK)
    texts += trace_texts(wh.pipeline)
    control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
    failing: list[tuple[str, dict[str, Any]]] = [
        ("a key lacking a scope", {"key": READ_ONLY_KEY, "resources": ("contacts", "events")}),
        ("a wrong key", {"key": WRONG_KEY, "resources": ("surveys",)}),
        ("a 5xx storm", {"key": KEY, "resources": tuple(CHECKS)}),
    ]
    for what, kw in failing:
        if what == "a 5xx storm":
            control(sim, "PUT", "faults", json={"error_rate": 1.0}).raise_for_status()
        with pytest.raises(Exception) as err:  # any failure: its text is checked
            wh.sync(**kw, **QUICK)
        texts += [(f"{where} ({what})", t) for where, t in exception_texts(err.value)]
        texts += [(f"{where} ({what})", t) for where, t in trace_texts(wh.pipeline)]
    control(sim, "PUT", "faults", json={}).raise_for_status()
    wh.sync(resources=tuple(CHECKS), key=KEY, **QUICK)
    texts += trace_texts(wh.pipeline)

    out, err_text = capfd.readouterr()
    logs = caplog.text
    assert "GET /contacts params=" in logs, "the client's DEBUG log was not captured"
    texts += [("log records", logs), ("stdout", out), ("stderr", err_text)]
    texts += list(file_contents(tmp_path))
    assert any(".duckdb (every value)" in where for where, _ in texts)
    assert any("trace" in where and "pipelines" in where for where, _ in texts), \
        "the trace file in the pipeline's working directory was not searched"
    for where, text in texts:
        assert_clean(where, text)


def test_pipeline_script_at_debug_level_leaks_the_key_nowhere(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=40, events=200, keys=KEYS)
    job = Job(tmp_path, sim)
    job.env.update({"SOURCES__GROWTHOS__API_KEY": KEY, "GROWTHOS_LOG_LEVEL": "DEBUG",
                    "RUNTIME__LOG_LEVEL": "DEBUG", "SOURCES__GROWTHOS__MAX_ATTEMPTS": "2",
                    "SOURCES__GROWTHOS__BACKOFF_BASE": "0.01"})
    outputs: list[tuple[str, str]] = []
    ok = job.run()
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "params=" in ok.stderr, "the client's DEBUG log is missing"
    outputs += [("stdout (success)", ok.stdout), ("stderr (success)", ok.stderr)]
    control(sim, "PUT", "faults", json={"error_rate": 1.0}).raise_for_status()
    storm = job.run()
    assert storm.returncode == 1 and "after 2 attempts" in storm.stderr
    outputs += [("stdout (5xx storm)", storm.stdout), ("stderr (5xx storm)", storm.stderr)]
    control(sim, "PUT", "faults", json={}).raise_for_status()
    for what, key in (("scope", READ_ONLY_KEY), ("wrong key", WRONG_KEY)):
        job.env["SOURCES__GROWTHOS__API_KEY"] = key
        r = job.run()
        assert r.returncode == 1
        outputs += [(f"stdout ({what})", r.stdout), (f"stderr ({what})", r.stderr)]
    for where, text in outputs:
        assert_clean(where, text)
    for where, data in file_contents(tmp_path):
        assert_clean(where, data)


# ---- the token goes to the configured host only ---------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    """A server on another port: records every request and its Authorization header."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"data": [], "has_more": false, "next_cursor": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _contact(n: int) -> dict[str, Any]:
    ts = f"2026-01-0{n}T00:00:00.000Z"
    return {"id": f"con_{n}", "email": f"c{n}@example.com", "external_id": None,
            "traits": {}, "tags": [], "created_at": ts, "updated_at": ts}


def _fake_api(other: str) -> type[BaseHTTPRequestHandler]:
    """The configured API host: its responses point at `other` (the other server's origin)."""
    elsewhere = f"{other}/v1/contacts?cursor=page2"

    class FakeApi(BaseHTTPRequestHandler):
        seen: ClassVar[list[tuple[str, str | None]]] = []

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            type(self).seen.append((self.path, self.headers.get("Authorization")))
            url = urlsplit(self.path)
            cursor = parse_qs(url.query).get("cursor", [None])[0]
            if url.path == "/v1/contacts" and cursor is None:
                # Page 1: the next page's cursor is an absolute URL on the other host, and a
                # contact's field names it too.
                first = {**_contact(1), "traits": {"profile_url": elsewhere}}
                self._json(200, {"data": [first], "has_more": True, "next_cursor": elsewhere,
                                 "request_id": "req_1"})
            elif url.path == "/v1/contacts" and cursor == elsewhere:
                self._json(200, {"data": [_contact(2)], "has_more": False, "next_cursor": None,
                                 "request_id": "req_2"})
            elif url.path == "/v1/settings":
                self._json(307, {"moved": True}, {"Location": f"{other}/v1/settings"})
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no such path",
                                           "details": []}, "request_id": "req_x"})

    return FakeApi


@pytest.fixture
def two_hosts() -> Iterator[tuple[Any, Any]]:
    """(configured API server, other server), both on loopback, on different ports."""
    _Recorder.seen = []
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    api = ThreadingHTTPServer(("127.0.0.1", 0),
                              _fake_api(f"http://127.0.0.1:{other.server_address[1]}"))
    for s in (other, api):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield api, other
    for s in (api, other):
        s.shutdown()
        s.server_close()


def test_the_token_is_only_sent_to_the_configured_host(two_hosts: tuple[Any, Any],
                                                       tmp_path: Path) -> None:
    api, _ = two_hosts
    base_url = f"http://127.0.0.1:{api.server_address[1]}/v1"
    pipeline = dlt.pipeline("secrets_hosts", pipelines_dir=str(tmp_path / "pipelines"),
                            destination=dlt.destinations.duckdb(str(tmp_path / "hosts.duckdb")),
                            dataset_name="h")
    # A next_cursor that is a URL elsewhere is sent back to the configured host as a cursor.
    sync(pipeline, growthos(api_key=KEY, base_url=base_url, **QUICK).with_resources("contacts"))
    handler = api.RequestHandlerClass
    cursors = [p for p, _ in handler.seen if "cursor=" in p]
    assert len(cursors) == 1 and all(auth == f"Bearer {KEY}" for _, auth in handler.seen)
    with duckdb.connect(str(tmp_path / "hosts.duckdb"), read_only=True) as con:
        assert con.execute("SELECT id FROM h.contacts ORDER BY id").fetchall() == \
            [("con_1",), ("con_2",)]
    # A redirect to another host is not followed: a clear error, nothing sent there.
    with pytest.raises(Exception) as err:  # any failure: the line is checked
        sync(pipeline, growthos(api_key=KEY, base_url=base_url, **QUICK)
             .with_resources("project_settings"))
    assert "redirect" in one_line(err.value) and "not followed" in one_line(err.value)
    assert _Recorder.seen == [], f"the other host received requests: {_Recorder.seen}"
