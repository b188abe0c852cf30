"""Helpers for the reliability suites: connections with test-only extras, run contexts, file reads."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics_export_sandbox import SandboxServer, connection_env
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc


def day(text: str) -> dt.datetime:
    """Midnight UTC of an ISO date."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def run_context(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The parts of a task context the export operators read (the data interval)."""
    return {"data_interval_start": start, "data_interval_end": end}


def connection_json(api: str, host: str, **extra: Any) -> str:
    """The sandbox connection of ``api`` with another host and/or extra fields (timeouts, attempts)."""
    conn = json.loads(connection_env(host)[f"AIRFLOW_CONN_{api.upper()}_DEFAULT"])
    conn["extra"] = {**conn.get("extra", {}), **extra}
    return json.dumps(conn)


@pytest.fixture
def api_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``api_conn(api, host, conn_id=None, **extra)`` → a connection id defined for this test only."""

    def make(api: str, host: str, conn_id: str | None = None, **extra: Any) -> str:
        conn_id = conn_id or f"{api}_reliability"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(api, host, **extra))
        return conn_id

    return make


@pytest.fixture(scope="session")
def _shared_scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def scripted(_shared_scripted: ScriptedServer) -> ScriptedServer:
    """The scripted server with an empty script and log: one server for the whole directory.

    Shutting a server down costs its 0.5-s poll interval; dozens of malformed-response cases
    each starting their own would spend most of their time in teardown.
    """
    server = _shared_scripted
    with server._lock:
        server.script.clear()
        server.last = Reply()
        server.requests.clear()
    return server


@pytest.fixture
def clean_sandbox(sandbox_reset: SandboxServer) -> Iterator[SandboxServer]:
    """The reset sandbox; fault history and the request log start empty."""
    yield sandbox_reset


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet file (compared row by row, not byte by byte)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def leftover_partials(folder: Path) -> list[Path]:
    """Temp objects ``.<name>.<hex>.partial`` the writer left behind (only after a hard kill)."""
    return sorted(folder.rglob(".*.partial")) if folder.exists() else []


def sandbox_env(url: str) -> dict[str, str]:
    """Environment for a subprocess whose *_default connections point at the sandbox."""
    return {**os.environ, **connection_env(url)}
