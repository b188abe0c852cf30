"""A tiny HTTP server that answers from a script, for transport behaviour the real APIs
only show under failure (Retry-After dates, dropped connections, truncated bodies).

Tests talk to it over real sockets with the real hooks; nothing in ``requests`` is patched.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # send | drop | truncate
    delay: float = 0.0


class ScriptedServer:
    """Replies in order from ``script``; repeats the last reply when the script runs out."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.last = Reply()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def queue(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> Reply:
        with self._lock:
            if self.script:
                self.last = self.script.popleft()
            return self.last

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "time": time.monotonic(),
                        }
                    )
                answered = False

                def answer() -> None:
                    # The request stops being open once its answer leaves: a client may send its
                    # next request the moment it has the response, before this handler returns.
                    nonlocal answered
                    if not answered:
                        answered = True
                        with server._lock:
                            server.in_flight -= 1

                try:
                    reply = server._next()
                    time.sleep(reply.delay)
                    if reply.action == "drop":
                        answer()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                    self.send_response(reply.status)
                    for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    if reply.action == "truncate":
                        self.send_header("Connection", "close")
                    answer()
                    self.end_headers()
                    if reply.action == "truncate":
                        self.wfile.write(data[: len(data) // 2])
                        self.close_connection = True
                    else:
                        self.wfile.write(data)
                finally:
                    answer()

            do_GET = do_POST = do_DELETE = _serve

        return Handler
