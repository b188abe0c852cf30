"""Connections saved exactly as the Airflow 3.3 UI saves them, tested and used by a real export.

One ``airflow api-server`` (simple auth manager, every user admin, so no login) runs for the
module in its own AIRFLOW_HOME. Connections are created through ``POST /api/v2/connections``
with the payload the UI's form sends: every extra field the provider declares present, and
null when untouched; port omitted or 0; host with and without scheme. Nothing comes from
``AIRFLOW_CONN_*``: the DAG run reads the connections the api-server stored.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests

from airflow_provider_analytics_export import get_provider_info
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner
from analytics_export_sandbox.credentials import CREDENTIALS, connection_env

from .conftest import EXAMPLE_DAGS, RecordingRunner, stop_group
from .test_daily_sync_dag import DAY, assert_every_api_landed

CONN_TYPES = ("browsee", "braze", "openpanel", "peer5", "sealmetrics")
#: Generous: the api-server starts in ~6 s on an idle machine; a loaded 2-core CI box is slower.
READY_SECONDS = 240
SECRETS = [value for creds in CREDENTIALS.values() for key, value in creds.items() if "id" not in key]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    """A running ``airflow api-server`` and the runner (same home, same database) behind it."""

    def __init__(self, runner: AirflowRunner, url: str) -> None:
        self.runner = runner
        self.url = url

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, timeout=120)

    def save(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v2/connections (replacing a connection of that id) -> the stored connection."""
        requests.delete(f"{self.url}/api/v2/connections/{body['connection_id']}", timeout=60)
        response = self.post("/api/v2/connections", body)
        assert response.status_code == 201, response.text
        stored = requests.get(f"{self.url}/api/v2/connections/{body['connection_id']}", timeout=60)
        return dict(stored.json())

    def test(self, body: dict[str, Any]) -> requests.Response:
        return self.post("/api/v2/connections/test", body)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("ui-airflow-home")
    runner = RecordingRunner(home, EXAMPLE_DAGS, sandbox.url, (home / "exports").as_uri())
    # The connections must come from the api-server's database, never from the environment.
    runner.env = {key: value for key, value in runner.env.items() if not key.startswith("AIRFLOW_CONN_")}
    runner.env.update(
        {
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
        }
    )
    runner.migrate()
    port = _free_port()
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen(
        [runner.airflow, "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
        env=runner.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn worker goes down with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, home / "api-server.log")
        yield ApiServer(runner, url)
    finally:
        stop_group(proc)
        log.close()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll the health endpoint until it answers 200; fail with the server's log if it never does."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"api-server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)  # poll interval, not a readiness guess
    pytest.fail(f"api-server not ready after {READY_SECONDS} s:\n{log.read_text()[-4000:]}")


def ui_form_payload(
    conn_type: str, sandbox_url: str, *, host: str | None = None, port: int | None = None
) -> dict:
    """What the 3.3 UI's Add Connection form POSTs for ``<type>_default`` pointing at the sandbox.

    Extras: every conn-field the provider declares, at its form default (null) unless the user
    filled it (the sandbox's project/site id). Empty standard fields are left out; ``port`` too
    unless given (the form sends a number once the field was touched, 0 included).
    """
    [declared] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    filled = json.loads(connection_env(sandbox_url)[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"])
    extra = {name: spec.get("schema", {}).get("default") for name, spec in declared["conn-fields"].items()}
    extra.update(filled.get("extra", {}))
    body: dict[str, Any] = {
        "connection_id": f"{conn_type}_default",
        "conn_type": conn_type,
        "host": host if host is not None else filled["host"],
        "password": filled["password"],
        "extra": json.dumps(extra),
    }
    if filled.get("login"):
        body["login"] = filled["login"]
    if port is not None:
        body["port"] = port
    return body


def test_braze_form_says_the_rest_endpoint_is_required(api_server: ApiServer) -> None:
    meta = requests.get(f"{api_server.url}/ui/connections/hook_meta", timeout=60).json()
    host = {
        m["connection_type"]: m["standard_fields"]["host"] for m in meta if m["connection_type"] in CONN_TYPES
    }
    assert "(required)" in host["braze"]["title"]
    assert host["braze"]["placeholder"].startswith("required: ")
    assert "required" not in (host["browsee"]["title"] or "")  # the others have a public default


@pytest.mark.parametrize("conn_type", CONN_TYPES)
@pytest.mark.parametrize(
    "variant",
    ["port omitted", "port 0", "host without port, port field set"],
)
def test_connection_saved_by_the_ui_form_passes_test_connection(
    api_server: ApiServer, sandbox_reset: SandboxServer, conn_type: str, variant: str
) -> None:
    sandbox_port = int(sandbox_reset.url.rsplit(":", 1)[1])
    host, port = {
        "port omitted": (None, None),
        "port 0": (None, 0),
        "host without port, port field set": ("http://127.0.0.1", sandbox_port),
    }[variant]
    body = ui_form_payload(conn_type, sandbox_reset.url, host=host, port=port)

    stored = api_server.save(body)
    assert None in json.loads(stored["extra"]).values()  # stored as the UI stores it: nulls kept

    response = api_server.test(body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] is True, result["message"]
    assert result["message"].endswith(f"at http://127.0.0.1:{sandbox_port} works.")
    assert [entry["status"] for entry in sandbox_reset.requests_log] == [200]


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_refused_credentials_name_the_api_call_status_and_the_apis_text(
    api_server: ApiServer, sandbox_reset: SandboxServer, conn_type: str
) -> None:
    body = {**ui_form_payload(conn_type, sandbox_reset.url), "password": "wrong-secret-123"}
    api_server.save(body)
    result = api_server.test(body).json()
    [refused] = sandbox_reset.requests_log
    assert result["status"] is False
    api_name = hook_class(conn_type).api_name
    assert result["message"].startswith(f"{api_name} {refused['method']} {refused['path']} failed ")
    # "(HTTP 401): ..." or, with the error code and request id, "(HTTP 401; code ...; request_id ...): ..."
    assert re.search(rf"\(HTTP {refused['status']}(; [^)]*)?\): ", result["message"])
    assert refused["status"] in (401, 403)
    assert len(result["message"].split("): ", 1)[1]) > 3  # the API's own words follow


def hook_class(conn_type: str) -> Any:
    import importlib

    [declared] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    module, _, name = declared["hook-class-name"].rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_host_without_scheme_fails_the_test_in_one_attempt_saying_why(
    api_server: ApiServer, sandbox_reset: SandboxServer, conn_type: str
) -> None:
    body = ui_form_payload(conn_type, sandbox_reset.url, host=sandbox_reset.url.removeprefix("http://"))
    api_server.save(body)
    started = time.monotonic()
    result = api_server.test(body).json()
    assert time.monotonic() - started < 30  # one handshake, not six attempts with backoff
    assert result["status"] is False
    assert "TLS handshake with https://127.0.0.1:" in result["message"]
    assert "has no scheme, so https was used" in result["message"]
    assert re.match(r"^\w+ (GET|POST) /\S+ failed \(no response\): ", result["message"])


def test_ui_test_button_on_a_saved_connection_hits_the_port_0_quirk_and_the_cli_works(
    api_server: ApiServer, sandbox_reset: SandboxServer
) -> None:
    body = ui_form_payload("peer5", sandbox_reset.url)  # port left empty: stored as null
    stored = api_server.save(body)
    assert stored["port"] is None and stored["password"] == "***"
    # What the Test button in the connection list posts: the stored values, port as Number(null) = 0.
    button = {**stored, "port": 0, "login": "", "schema": "", "description": ""}
    button.pop("team_name")
    response = api_server.test(button)
    assert response.status_code == 400
    assert "differs from the stored connection" in response.text

    # The README's workaround: the CLI tests the stored connection as it is.
    result = api_server.runner.cli("connections", "test", "peer5_default")
    assert "Connection success!" in result.stdout
    assert [entry["status"] for entry in sandbox_reset.requests_log] == [200]


@pytest.mark.parametrize("form", ["--conn-json, numbers as strings", "--conn-uri"])
def test_connection_added_with_the_cli_passes_the_cli_test(
    api_server: ApiServer, sandbox_reset: SandboxServer, form: str
) -> None:
    filled = json.loads(connection_env(sandbox_reset.url)["AIRFLOW_CONN_SEALMETRICS_DEFAULT"])
    extra = {**filled["extra"], "timeout": "30", "connect_timeout": " 5 ", "max_attempts": ""}
    if form == "--conn-uri":
        scheme_host, port = filled["host"].rsplit(":", 1)
        value = (
            f"sealmetrics://:{quote(filled['password'], safe='')}@{quote(scheme_host, safe='')}:{port}/"
            f"?{urlencode(extra)}"
        )
    else:
        value = json.dumps({**filled, "extra": extra})
    runner = api_server.runner
    # An id of its own per form (nothing to delete first) and the stored row read back through the
    # api-server (same database): two Airflow CLI start-ups per form, not four.
    conn_id = "sealmetrics_cli_" + form.split(",")[0].removeprefix("--conn-")
    runner.cli("connections", "add", conn_id, form.split(",")[0], value)
    stored = requests.get(f"{api_server.url}/api/v2/connections/{conn_id}", timeout=60).json()
    assert json.loads(stored["extra"])["max_attempts"] == ""  # stored as given: the hook must cope

    result = runner.cli("connections", "test", conn_id)
    assert "Connection success!" in result.stdout
    assert [entry["status"] for entry in sandbox_reset.requests_log] == [200]


def test_connections_saved_by_the_ui_run_a_real_export_of_every_api(
    api_server: ApiServer, sandbox_reset: SandboxServer
) -> None:
    for index, conn_type in enumerate(CONN_TYPES):
        # Alternate the two shapes the form produces: port left empty, port 0.
        api_server.save(ui_form_payload(conn_type, sandbox_reset.url, port=0 if index % 2 else None))
    runner = api_server.runner
    assert not [key for key in runner.env if key.startswith("AIRFLOW_CONN_")]

    result = runner.dags_test("analytics_daily_sync", (DAY + dt.timedelta(days=1)).isoformat(), check=False)

    output = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in output, output[-6000:]
    export_root = Path(runner.env["AIRFLOW_VAR_ANALYTICS_EXPORT_ROOT"].removeprefix("file://"))
    assert_every_api_landed(sandbox_reset, export_root)
    # Each task's closing line: its file, and exactly the requests the sandbox saw from its API.
    closing = re.findall(r"Export written: (\S+) rows=(\d+) .*? requests=(\d+) retries=(\d+)", output)
    per_api = {Path(uri).parent.parent.name: (int(rows), int(n), int(r)) for uri, rows, n, r in closing}
    assert sorted(per_api) == sorted(CONN_TYPES)
    for api, (rows, requests_made, retries) in per_api.items():
        assert rows > 0 and retries == 0
        assert requests_made == len([e for e in sandbox_reset.requests_log if e["api"] == api]), api
    assert not [secret for secret in SECRETS if secret in output]
