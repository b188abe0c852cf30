"""A private sandbox for the sandbox's own tests (fresh state per test, fast Sealmetrics jobs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from analytics_export_sandbox import CREDENTIALS, SandboxConfig, SandboxServer


@pytest.fixture(scope="module")
def _server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.fixture
def sbx(_server: SandboxServer) -> Iterator[SandboxServer]:
    """Module server with default config + short job delay, reset before and after each test."""
    _server.config = SandboxConfig(sealmetrics_job_delay=0.6)
    _server.reset()
    yield _server
    _server.config = SandboxConfig()
    _server.reset()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


BROWSEE_AUTH = {
    "apiKey": CREDENTIALS["browsee"]["api_key"],
    "secretKey": CREDENTIALS["browsee"]["secret_key"],
}
BRAZE_HEADERS = {"Authorization": f"Bearer {CREDENTIALS['braze']['api_key']}"}
OPENPANEL_HEADERS = {
    "openpanel-client-id": CREDENTIALS["openpanel"]["client_id"],
    "openpanel-client-secret": CREDENTIALS["openpanel"]["client_secret"],
}
PEER5_HEADERS = {"X-Auth-Token": CREDENTIALS["peer5"]["token"]}
SEAL_HEADERS = {"X-API-Key": CREDENTIALS["sealmetrics"]["api_key"]}
