"""No credential or download token ends up in task logs, XComs, rendered fields, errors or URLs.

Every example DAG runs with real Airflow (``airflow dags test``, fresh AIRFLOW_HOME and
export root) against the sandbox through a recording proxy, which keeps every request
line (path and query string) the provider sent. Afterwards the whole log folder, every
table of the metadata database (xcom, rendered_task_instance_fields, task instances and
their notes and errors...), the CLI output and every recorded URL are searched for each
sandbox credential and each Sealmetrics download token the sandbox handed out.
"""

from __future__ import annotations

import datetime as dt
import http.client
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
#: DAGs that only run when another DAG's asset event triggers them (not runnable alone).
ASSET_TRIGGERED = {"browsee_sessions_landed"}
#: DAG runs in flight at once, each in its own copy of one migrated AIRFLOW_HOME.
PARALLEL_RUNS = 4
#: Not secrets: identifiers that legitimately appear in requests and logs.
NOT_SECRET = {"project_id", "account_id"}


class RecordingProxy:
    """Forwards every request to the sandbox and keeps its request line (what a URL would leak)."""

    def __init__(self, upstream: str) -> None:
        self.lines: list[str] = []
        parts = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.lines.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream_conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream_conn.close()

            do_GET = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _dag_ids() -> list[str]:
    found = re.findall(r'dag_id="([^"]+)"', "".join(p.read_text() for p in EXAMPLE_DAGS.glob("*.py")))
    return sorted(set(found))


def _logical_date(dag_id: str) -> str:
    """A recent date (Peer5 serves minute data for the last 7 days only), a Monday for weekly DAGs."""
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if "weekly" in dag_id:
        today -= dt.timedelta(days=today.weekday())
    return today.isoformat()


def _secrets() -> dict[str, str]:
    return {
        f"{api}.{field}": value
        for api, fields in CREDENTIALS.items()
        for field, value in fields.items()
        if field not in NOT_SECRET
    }


def _database_text(db: Path) -> str:
    """Every row of every table, as text (blobs decoded leniently)."""
    chunks = []
    with sqlite3.connect(db) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):  # noqa: S608 - table names from sqlite
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    chunks.append(f"{table}: {value}")
    return "\n".join(chunks)


@pytest.fixture(scope="module")
def example_runs(
    sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Every example DAG run once through the recording proxy; yields what to search.

    ``airflow dags test`` prints the task logs (triggerer included) to its own output, so
    that output is the task log searched here, next to anything under each home's logs/.
    """
    sandbox.reset()
    original = sandbox.config.to_dict()
    sandbox.config.update({"sealmetrics_job_delay": 0.5})
    proxy = RecordingProxy(sandbox.url)
    base = tmp_path_factory.mktemp("secrets-airflow")
    export_root = tmp_path_factory.mktemp("secrets-exports").as_uri()
    template = AirflowRunner(base / "template", EXAMPLE_DAGS, proxy.url, export_root)
    template.migrate()

    def run(dag_id: str) -> tuple[str, str, float]:
        home = base / dag_id
        shutil.copytree(template.home, home)
        runner = AirflowRunner(home, EXAMPLE_DAGS, proxy.url, export_root)
        started = time.monotonic()
        result = runner.dags_test(dag_id, _logical_date(dag_id), check=False)
        return dag_id, result.stdout + result.stderr, time.monotonic() - started

    try:
        with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            runs = list(pool.map(run, _dag_ids()))
        yield {
            "homes": [base / dag_id for dag_id, _, _ in runs],
            "outputs": {dag_id: output for dag_id, output, _ in runs},
            "seconds": {dag_id: round(seconds, 1) for dag_id, _, seconds in runs},
            "tokens": list(sandbox.state["sealmetrics"]["tokens"]),
            "request_lines": list(proxy.lines),
            "sandbox_paths": [entry["path"] for entry in sandbox.requests_log],
        }
    finally:
        proxy.close()
        sandbox.config.update(original)
        sandbox.reset()


@pytest.mark.heavy
def test_example_dags_ran(example_runs: dict[str, Any]) -> None:
    print("seconds per DAG run:", example_runs["seconds"])
    for dag_id, output in example_runs["outputs"].items():
        if dag_id not in ASSET_TRIGGERED:
            assert "state=success" in output, f"{dag_id} failed:\n{output[-4000:]}"
    assert example_runs["tokens"], "no Sealmetrics job handed out a download token"
    assert any("/download/" in line for line in example_runs["request_lines"]), "nothing was downloaded"


@pytest.mark.heavy
def test_no_secret_in_logs_xcom_rendered_fields_or_errors(example_runs: dict[str, Any]) -> None:
    places: dict[str, str] = {}
    for home in example_runs["homes"]:
        for path in (home / "logs").rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_text(errors="replace")
        places[f"{home.name} metadata database"] = _database_text(home / "airflow.db")
    places.update(
        {f"task logs (dags test output) of {dag}": text for dag, text in example_runs["outputs"].items()}
    )
    databases = "\n".join(text for where, text in places.items() if where.endswith("metadata database"))
    for table in ("xcom", "rendered_task_instance_fields", "task_instance"):
        assert f"\n{table}: " in databases, f"nothing in table {table}: the search would prove nothing"
    assert "Sealmetrics download" in "".join(example_runs["outputs"].values())

    secrets = {**_secrets(), **{f"download token {i}": t for i, t in enumerate(example_runs["tokens"])}}
    leaks = [
        f"{name} in {where}"
        for name, value in secrets.items()
        for where, text in places.items()
        if value in text
    ]
    assert leaks == []


@pytest.mark.heavy
def test_no_secret_in_any_url(example_runs: dict[str, Any]) -> None:
    """Credentials travel in headers or bodies only; download tokens only in their own download path."""
    lines = [unquote(line) for line in example_runs["request_lines"]]
    assert len(lines) > 20
    leaks = [f"{name}: {line}" for name, value in _secrets().items() for line in lines if value in line]
    assert leaks == []
    tokens = example_runs["tokens"]
    misplaced = [
        line
        for line in lines
        for token in tokens
        if token in line and "/api/v1/exports/download/" not in line
    ]
    assert misplaced == []
    logged = "\n".join(example_runs["sandbox_paths"])
    assert not any(value in logged for value in [*_secrets().values(), *tokens])


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
