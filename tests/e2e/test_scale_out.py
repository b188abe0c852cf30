"""openpanel_projects_mapped run by real Airflow: two projects, two mapped exports, two complete files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.openpanel import openpanel_events


def app_connection(sandbox: SandboxServer) -> str:
    """Same sandbox and client, another project: what a second OpenPanel project looks like."""
    creds = CREDENTIALS["openpanel"]
    return json.dumps(
        {
            "conn_type": "openpanel",
            "host": sandbox.url,
            "login": creds["client_id"],
            "password": creds["client_secret"],
            "extra": {"project_id": "proj-app"},
        }
    )


def test_mapped_exports_of_two_projects_each_land_complete(
    airflow_runner, airflow_run, sandbox_reset, export_root: Path
):
    airflow_runner.cli("pools", "set", "openpanel_api", "2", "OpenPanel export API")
    airflow_run(
        "openpanel_projects_mapped",
        "2024-04-16",
        AIRFLOW_CONN_OPENPANEL_APP=app_connection(sandbox_reset),
        AIRFLOW_VAR_OPENPANEL_CONN_IDS=json.dumps(["openpanel_default", "openpanel_app"]),
    )
    day = dt.date(2024, 4, 15)
    folder = export_root / "openpanel" / day.isoformat()
    for conn_id, project in (("openpanel_default", "proj-web"), ("openpanel_app", "proj-app")):
        got = [json.loads(line) for line in (folder / conn_id / "events.jsonl").read_text().splitlines()]
        assert got == list(openpanel_events(sandbox_reset.config, project, day, day)), conn_id
        assert {row["projectId"] for row in got} == {project}
    assert len((folder / "openpanel_app" / "events.jsonl").read_text().splitlines()) == 1200
    assert not list(folder.rglob("*.partial"))
    exports = [e for e in sandbox_reset.requests_log if e["path"] == "/export/events" and e["status"] == 200]
    assert len(exports) == 5  # 2,400 + 1,200 events at 1,000 per page: 3 + 2 pages, each fetched once
