"""No credential or download token ends up in task logs, XComs, rendered fields, errors or URLs.

Real Airflow runs are scanned where they happen: every e2e test that runs an example DAG is
followed by a search of its CLI output, the Airflow home's logs and metadata database and every
URL the sandbox received, for each sandbox credential and each Sealmetrics download token
(tests/e2e/conftest.py, assert_no_secret_leaked). Running every example DAG a second time just
for the scan cost 81 s; here only what the e2e runs do not reach: broken downloads.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
E2E = Path(__file__).resolve().parents[1] / "e2e"


def test_every_example_dag_runs_in_a_scanned_e2e_test() -> None:
    """The e2e runs are the secrets scan's corpus (tests/e2e/conftest.py): none may go unscanned."""
    dag_ids = set(re.findall(r'dag_id="([^"]+)"', "".join(p.read_text() for p in EXAMPLE_DAGS.glob("*.py"))))
    e2e = "".join(path.read_text() for path in E2E.glob("test_*.py"))
    assert len(dag_ids) > 5
    assert sorted(dag_id for dag_id in dag_ids if f'"{dag_id}"' not in e2e) == []
    for fixture in ("airflow_runner", "airflow_run", "RecordingRunner"):
        assert fixture in e2e


DOWNLOAD_TOKEN = "dl-token-0f3a9c2e7b5d41e8a6c3b2d1e0f9a8b7"
#: How a download can break off, as a raw socket server plays it after reading the request.
BROKEN_DOWNLOADS = (
    "refused",  # nothing listens: the connect fails
    "closed",  # the connection is closed before any answer
    "reset",  # a TCP reset before any answer
    "reset_mid_body",  # the headers and part of the body, then a TCP reset
    "cut_short",  # fewer bytes than Content-Length, then a clean close
    "bad_chunk",  # a chunked body whose next chunk size is garbage
    "stalled",  # the headers and part of the body, then silence past the read timeout
)


class BrokenDownloadServer:
    """Answers every request on a real socket by breaking off the way :attr:`mode` says."""

    def __init__(self, mode: str) -> None:
        import socket

        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        if mode == "refused":
            self.sock.close()  # the port is free again: a connect is refused
            return
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        import socket
        import struct

        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\n"
            part = b"date,pageviews\r\n2024-04-10,1\r\n"
            if self.mode in ("reset", "reset_mid_body"):
                if self.mode == "reset_mid_body":
                    conn.sendall(head + b"Content-Length: 100000\r\n\r\n" + part)
                    time.sleep(0.1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "cut_short":
                conn.sendall(head + b"Content-Length: 100000\r\n\r\n" + part)
            elif self.mode == "bad_chunk":
                conn.sendall(
                    head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\nzz\r\n" % (len(part), part)
                )
            elif self.mode == "stalled":
                conn.sendall(head + b"Content-Length: 100000\r\n\r\n" + part)
                time.sleep(3)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("mode", BROKEN_DOWNLOADS)
def test_no_download_token_in_any_error_a_broken_download_raises(
    mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    """Every way a download breaks off fails without the link's token in the error, its chain or logs.

    requests and urllib3 put the URL (token included) in their exceptions' text; the error raised
    must be built without it, and must not carry those exceptions as its cause or context either
    (not even a suppressed one: error reporters walk the whole chain).
    """
    import json
    import logging
    import traceback

    from airflow_provider_analytics_export.exceptions import TransientApiError
    from airflow_provider_analytics_export.files.writer import ExportWriter
    from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook

    # INFO and up, as Airflow logs a task; urllib3's DEBUG lines show the path, whose token
    # Airflow's masker redacts (the hook registers it before the request).
    caplog.set_level(logging.INFO)
    server = BrokenDownloadServer(mode)
    host = f"http://127.0.0.1:{server.port}"
    conn = {
        "conn_type": "sealmetrics",
        "host": host,
        "password": "sm_key",
        "extra": {"timeout": 1, "max_attempts": 2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_BROKEN", json.dumps(conn))
    url = f"{host}/api/v1/exports/download/{DOWNLOAD_TOKEN}"
    try:
        with pytest.raises(TransientApiError) as raised:
            SealmetricsHook("sealmetrics_broken").download_export(
                url, lambda layout: ExportWriter((tmp_path / "out.csv").as_uri(), layout)
            )
    finally:
        server.close()

    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    texts = [str(item) for item in chain] + [repr(item) for item in chain]
    texts += ["".join(traceback.format_exception(raised.value)), caplog.text, capsys.readouterr().out]
    leaked = [text for text in texts if DOWNLOAD_TOKEN in text]
    assert not leaked, leaked
    assert chain == [raised.value], f"the error carries the library's exceptions: {chain}"
    assert "/api/v1/exports/download/<token>" in str(raised.value)
    assert not (tmp_path / "out.csv").exists()
