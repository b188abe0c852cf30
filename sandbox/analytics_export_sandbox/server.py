"""HTTP plumbing shared by all five fake APIs: routing, auth helpers, latency, faults and logging."""

from __future__ import annotations

import copy
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .config import FAULT_KINDS, SandboxConfig


class ErrorResponse(Exception):
    """Raised by handlers to answer with a documented error status/body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None, overlap: bool = False):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.overlap = overlap


@dataclass
class Request:
    """A parsed request as handlers see it (query values are lists, as they may repeat)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    base_url: str
    fault: str | None = None

    def q(self, name: str) -> str | None:
        """Last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """Parsed JSON body; raises ValueError when it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body)


@dataclass
class Response:
    """Status, headers and either a body or a lazily generated stream of known length."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterator[bytes] | None = None
    length: int | None = None


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return Response(status, json.dumps(obj).encode(), hdrs)


def error_body(api: str, status: int, message: str) -> Any:
    """Each API's own error envelope, so injected faults look like the real thing."""
    if api == "browsee":
        return {"status": "failure", "message": {"error": message}}
    if api == "braze":
        return {"message": message}
    if api == "openpanel":
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        return {"status": status, "error": reason, "message": message}
    if api == "peer5":
        return {"error": True, "message": message}
    from .sealmetrics import ERROR_CODES, envelope

    return envelope(ERROR_CODES.get(status, "internal_error"), message)


def route_api(path: str) -> str | None:
    """Which fake API owns a path."""
    if path == "/api/v1/export/sessions":
        return "browsee"
    if path == "/sessions/data_series":
        return "braze"
    if path.startswith("/export/"):
        return "openpanel"
    if path == "/v1/export":
        return "peer5"
    if path == "/api/v1/exports" or path.startswith("/api/v1/exports/"):
        return "sealmetrics"
    return None


class FaultInjector:
    """Seeded decision sequence: exactly two draws per API request, so a seed replays exactly."""

    GENERIC = ("500", "502", "503", "429", "drop", "truncate", "slow")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._rng = random.Random(0)
        self.history: list[str | None] = []

    def reset(self) -> None:
        with self._lock:
            self._key = None
            self.history = []

    def draw(self, config: SandboxConfig, applicable: tuple[str, ...]) -> str | None:
        faults = config.faults
        if faults.rate <= 0:
            return None
        kinds = [k for k in faults.kinds if k in applicable]
        if not kinds:
            # No draw: the sequence of requests that CAN be hit (and so which ones are) does not
            # shift with how many status polls a loaded machine happened to make in between.
            return None
        with self._lock:
            key = (id(faults), int(faults.seed))
            if key != self._key:
                self._key = key
                self._rng = random.Random(int(faults.seed))
                self.history = []
            u = self._rng.random()
            v = self._rng.random()
            kind = kinds[int(v * len(kinds))] if u < faults.rate else None
            self.history.append(kind)
            return kind


def _applicable_faults(api: str, req: Request) -> tuple[str, ...]:
    """Faults that can hit this request without causing side effects a retry would duplicate."""
    if api != "sealmetrics":
        return FaultInjector.GENERIC
    if req.method == "POST" and req.path == "/api/v1/exports":
        return ("500", "502", "503", "429", "drop", "slow", "job_fail", "create_then_drop")
    if req.method == "DELETE":
        return ("500", "502", "503", "429", "drop", "slow")
    if req.path.startswith("/api/v1/exports/download/") or req.path == "/api/v1/exports/stream":
        return (*FaultInjector.GENERIC, "download_cut")
    return FaultInjector.GENERIC


def _log_path(api: str, path: str) -> str:
    """Request path as logged: download tokens are secrets and get redacted."""
    if api == "sealmetrics" and path.startswith("/api/v1/exports/download/"):
        return "/api/v1/exports/download/<token>"
    return path


#: Seconds before an answer's moment that its thread stops sleeping and yields until it comes.
WAKE_EARLY = 0.002


def _sleep_until(moment: float) -> None:
    """Sleep until ``moment`` (``time.monotonic``), if it is still ahead, and not much longer.

    A sleep ends when the thread gets a core again, a millisecond or more late on a busy
    machine: that is the sandbox's own overhead, not the latency it models. So the thread
    wakes :data:`WAKE_EARLY` before and yields until the moment.
    """
    left = moment - time.monotonic()
    if left > WAKE_EARLY:
        time.sleep(left - WAKE_EARLY)
    while time.monotonic() < moment:
        time.sleep(0)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AnalyticsExportSandbox/1.0"
    server: _HTTPServer
    arrived: float = 0.0

    def setup(self) -> None:
        """Disable Nagle: headers and body go out in separate writes, which otherwise costs ~40 ms each."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        """Stamp the request's arrival (its first line is in) before the headers are parsed.

        The log's ``started`` and the configured latency count from here, so the sandbox's own
        header parsing is not billed to the client as the gap between two requests.
        """
        self.arrived = time.monotonic()
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request stderr noise; the sandbox keeps its own structured log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    # -- plumbing ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, resp: Response, cut: bool = False) -> None:
        """Write a response; ``cut`` sends the full Content-Length but only half the body, then closes."""
        length = len(resp.body) if resp.chunks is None else (resp.length or 0)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        if cut:
            self.send_header("Connection", "close")
        if resp.chunks is None and not cut and self.command != "HEAD":
            # Head and body in one write: the client wakes once for the answer, not for its
            # head and then again for a body the server had not sent yet (a busy machine's cost).
            # The stdlib's own header buffer, which end_headers() appends its blank line to.
            self._headers_buffer.append(b"\r\n" + resp.body)  # type: ignore[attr-defined]
            self.flush_headers()
            return
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.chunks is None:
            self.wfile.write(resp.body[: length // 2])
        else:
            sent = 0
            limit = length // 2 if cut else length
            for chunk in resp.chunks:
                if sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                self.wfile.write(chunk)
                sent += len(chunk)
                if sent >= limit:
                    break
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def _dispatch(self) -> None:
        sbx = self.server.sandbox
        started = self.arrived
        generation = sbx.generation
        wall = time.time()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        host = self.headers.get("Host") or f"{sbx.host}:{sbx.port}"
        req = Request(
            self.command,
            path,
            parse_qs(parts.query, keep_blank_values=True),
            self.headers,
            body,
            f"http://{host}",
        )
        if path.startswith("/_sandbox/"):
            self._send(sbx._control(req))
            return
        api = route_api(path)
        if api is None:
            self._send(json_response(404, {"detail": "Not Found"}))
            return
        entry: dict[str, Any] = {
            "api": api,
            "method": self.command,
            "path": _log_path(api, path),
            # As sent: real clients never put credentials in a query, so a test can catch one that does.
            "query": parts.query,
            "started": started,
            "wall": wall,
            "ended": None,
            "status": None,
            "fault": None,
            "overlap": False,
        }
        config = sbx.config
        fault = sbx.faults.draw(config, _applicable_faults(api, req))
        req.fault = fault
        entry["fault"] = fault
        release: Callable[[], None] | None = None
        try:
            try:
                module = sbx.modules[api]
                guard = getattr(module, "guard", None)
                if guard is not None:
                    release = guard(sbx, req)
                slow = float(config.faults.slow_seconds) if fault == "slow" else 0.0
                if slow:
                    time.sleep(slow)
                if fault in ("drop", "create_then_drop"):
                    if fault == "create_then_drop":
                        module.handle(sbx, req)  # the server acted; its answer is lost
                    entry["status"] = 0
                    self.close_connection = True
                    return
                if fault in ("500", "502", "503", "429"):
                    status = int(fault)
                    retry_after = status == 429 or (status == 503 and api == "sealmetrics")
                    headers = {"Retry-After": "1"} if retry_after else {}
                    msg = {
                        500: "Internal Server Error",
                        502: "Bad Gateway",
                        503: "Service Unavailable",
                        429: "Too Many Requests",
                    }[status]
                    raise ErrorResponse(
                        status, error_body(api, status, f"{msg} (sandbox fault injection)"), headers
                    )
                # The configured latency runs from the request's arrival to its answer.
                answer_at = started + slow + config.latency_ms.get(api, 0) / 1000
                if getattr(module, "ANSWER_AT_ARRIVAL", False):
                    # The sandbox's own work (generating, serialising a page) runs inside the
                    # latency: a page costs the latency, not the latency plus this double's Python.
                    try:
                        resp = module.handle(sbx, req)
                    finally:
                        _sleep_until(answer_at)
                else:
                    # The API's rules (a rate window) see the request once the latency is over.
                    _sleep_until(answer_at)
                    resp = module.handle(sbx, req)
            except ErrorResponse as err:
                entry["overlap"] = err.overlap
                resp = json_response(err.status, err.body, err.headers)
            except Exception as exc:  # noqa: BLE001 - a sandbox bug must still answer with a 500
                resp = json_response(500, error_body(api, 500, f"sandbox internal error: {exc!r}"))
            extra = getattr(sbx.modules[api], "extra_headers", None)
            if extra is not None:
                resp.headers.update(extra(sbx, req))
            for observe in sbx.observers:
                observe(api, req, resp)
            entry["status"] = resp.status
            cut = fault == "truncate" or (fault == "download_cut" and resp.status == 200)
            if resp.chunks is None:
                # Log and release before the bytes leave, so a client that has its response
                # already sees the entry and may immediately send its next request.
                entry["ended"] = time.monotonic()
                if release is not None:
                    release()
                    release = None
                sbx._log(entry, generation)
            self._send(resp, cut=cut)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if release is not None:
                release()
            if entry["ended"] is None:
                entry["ended"] = time.monotonic()
                sbx._log(entry, generation)


class SandboxServer:
    """In-process fake of the five analytics export APIs on a real socket (threaded, keep-alive)."""

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        from . import braze, browsee, openpanel, peer5, sealmetrics

        self.config: SandboxConfig = config if config is not None else SandboxConfig()
        self.modules: dict[str, ModuleType] = {
            "browsee": browsee,
            "braze": braze,
            "openpanel": openpanel,
            "peer5": peer5,
            "sealmetrics": sealmetrics,
        }
        self.faults = FaultInjector()
        self.lock = threading.RLock()
        self.requests_log: list[dict[str, Any]] = []
        #: Counts resets: a request that arrived before the last one is not logged after it.
        self.generation = 0
        #: Called with (api, request, response) for every answered API request, e.g. by the
        #: contract tests that validate both against a vendor's OpenAPI spec.
        self.observers: list[Callable[[str, Request, Response], None]] = []
        self.state: dict[str, Any] = {}
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self.host: str = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns self so ``SandboxServer().start()`` reads naturally."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="sandbox-http", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Blocking variant used by ``python -m ...sandbox``."""
        self._httpd.serve_forever()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget jobs, rate-limit windows, in-flight markers, the fault sequence and the log."""
        with self.lock:
            self.generation += 1
            self.requests_log.clear()
            self.faults.reset()
            for name, module in self.modules.items():
                self.state[name] = module.new_state()

    def _log(self, entry: dict[str, Any], generation: int) -> None:
        """Log a request unless the sandbox was reset since it arrived: a streamed answer is logged
        once its last byte is out, which can be after its client has finished and the next test
        has reset the sandbox; that test must not see the earlier test's request."""
        with self.lock:
            if generation == self.generation:
                self.requests_log.append(entry)

    def _control(self, req: Request) -> Response:
        """/_sandbox/* endpoints: live config, reset, the request log and the truth of each API."""
        if req.path.startswith("/_sandbox/truth/") and req.method == "GET":
            from . import truth  # imports the API modules, which import this one

            with self.lock:
                config = copy.deepcopy(self.config)
            return truth.answer(config, req.path[len("/_sandbox/truth/") :], req)
        if req.path == "/_sandbox/config":
            if req.method == "POST":
                try:
                    data = req.json()
                    if not isinstance(data, dict):
                        raise ValueError("config must be a JSON object")
                    with self.lock:
                        self.config.update(data)
                except (ValueError, TypeError) as exc:
                    return json_response(400, {"error": str(exc)})
            elif req.method != "GET":
                return json_response(405, {"error": "Method Not Allowed"})
            return json_response(200, self.config.to_dict())
        if req.path == "/_sandbox/reset" and req.method == "POST":
            self.reset()
            return json_response(200, {"status": "ok"})
        if req.path == "/_sandbox/requests" and req.method == "GET":
            with self.lock:
                log = list(self.requests_log)
            return json_response(200, {"requests": log})
        if req.path == "/_sandbox/faults" and req.method == "GET":
            return json_response(200, {"history": list(self.faults.history)})
        return json_response(404, {"error": "Not Found"})


assert set(FaultInjector.GENERIC) <= set(FAULT_KINDS)
