"""Shared fixtures: the sandbox, a scripted server, memory://, a local S3 (moto) and Redis."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.scripted_server import ScriptedServer

if TYPE_CHECKING:
    from analytics_export_sandbox import SandboxServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def quick_backoff(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blind retry backoff 20x shorter than in production: the clock is the one seam tests fake.

    Waits an API asks for (Retry-After, a rate-limit window's reset) are unchanged; a test about
    the backoff itself opts out with ``@pytest.mark.real_backoff``.
    """
    if request.node.get_closest_marker("real_backoff") is None:
        monkeypatch.setattr("airflow_provider_analytics_export.transport.retry.BACKOFF_BASE", 0.025)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the session; every *_default connection points at it."""
    from analytics_export_sandbox import SandboxServer, connection_env

    server = SandboxServer().start()
    previous = {key: os.environ.get(key) for key in connection_env(server.url)}
    os.environ.update(connection_env(server.url))
    yield server
    server.stop()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def sandbox_reset(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    """The session sandbox with fresh state and the default config for this test (and after it).

    Defaults, not "whatever the previous test left": test order varies (e.g. under xdist). The
    reset also empties the APIs' rate windows, so the clients' copies of them (the account limits
    of this process and the machine-wide state files) start afresh too: a client still counting
    an earlier test's window would open its next one before the sandbox's new window ends.
    """
    from airflow_provider_analytics_export.transport import limits
    from airflow_provider_analytics_export.transport.machine_limits import LIMITS_DIR_ENV
    from analytics_export_sandbox import SandboxConfig

    defaults = SandboxConfig().to_dict()
    sandbox.config.update(defaults)
    sandbox.reset()
    limits._registry.clear()
    monkeypatch.setenv(LIMITS_DIR_ENV, str(tmp_path_factory.mktemp("limits")))
    yield sandbox
    sandbox.config.update(defaults)
    sandbox.reset()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def memory_fs() -> Iterator[object]:
    """Attach fsspec's memory filesystem so ``memory://`` ObjectStoragePaths resolve."""
    import fsspec
    from airflow.sdk.io.store import attach

    fs = fsspec.filesystem("memory")
    attach("memory", fs=fs)
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


@pytest.fixture(scope="session")
def s3_destination() -> Iterator[str]:
    """A moto S3 server, an ``aws_moto`` connection pointing at it and an empty bucket ``exports``.

    Yields the connection id; destinations are ``s3://exports/...`` with ``destination_conn_id``.
    """
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    env = {
        "AIRFLOW_CONN_AWS_MOTO": json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        ),
    }
    os.environ.update(env)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="exports")
    yield "aws_moto"
    proc.terminate()
    proc.wait(timeout=10)
    for key in env:
        os.environ.pop(key, None)


def _wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real redis-server on a free port for the session (no persistence); yields its URL.

    ``make test`` installs redis-server. Missing, it skips locally but fails in CI (CI=true),
    so the shared-limit tests can never pass by not running.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed; `make redis-server` installs it (Debian package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session Redis, emptied for this test (no lease, window or pause left by another)."""
    import redis

    redis.Redis.from_url(redis_server).flushall()
    return redis_server
