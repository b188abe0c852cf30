"""analytics_daily_sync: all five APIs in one daily run, each file equal to the sandbox's day."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow.parquet as pq

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.braze import braze_window
from analytics_export_sandbox.browsee import browsee_sessions
from analytics_export_sandbox.credentials import CREDENTIALS
from analytics_export_sandbox.openpanel import openpanel_events
from analytics_export_sandbox.peer5 import peer5_csv, peer5_rows
from analytics_export_sandbox.sealmetrics import sealmetrics_file_chunks

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC)
METRICS = ["http", "p2p", "played", "rebuffered", "sessions"]


def test_one_run_lands_every_api_for_its_day(
    airflow_run, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    airflow_run("analytics_daily_sync", (DAY + dt.timedelta(days=1)).isoformat())
    assert_every_api_landed(sandbox_reset, export_root)


def assert_every_api_landed(sandbox: SandboxServer, export_root: Path) -> None:
    """Each of the five files under ``export_root`` holds exactly the sandbox's rows for DAY."""
    config = sandbox.config
    root = export_root / "daily-sync"
    start, end = int(DAY.timestamp()), int((DAY + dt.timedelta(days=1)).timestamp())

    sessions = pq.read_table(root / "browsee" / "2024-04-15" / "sessions.parquet").to_pylist()
    expected_sessions = list(browsee_sessions(config, start, end))
    assert [s["sessionId"] for s in sessions] == [s["sessionId"] for s in expected_sessions]

    events = pq.read_table(root / "openpanel" / "2024-04-15" / "events.parquet").to_pylist()
    project = CREDENTIALS["openpanel"]["project_id"]
    assert [e["id"] for e in events] == [
        e["id"] for e in openpanel_events(config, project, "2024-04-15", "2024-04-15")
    ]

    braze = [
        json.loads(line)
        for line in (root / "braze" / "2024-04-15" / "sessions.jsonl").read_text().splitlines()
    ]
    (point,) = braze_window(config, DAY, DAY + dt.timedelta(days=1), "day")
    assert braze == [{**point, "app_id": None, "segment_id": None}]  # jsonl: no _extra

    rows = peer5_rows(config, start * 1000, end * 1000, "1d", METRICS)
    peer5 = (root / "peer5" / "2024-04-15" / "traffic.csv").read_text()
    assert peer5 == peer5_csv(rows, ["timestamp", *METRICS])  # Peer5's own bytes, passed through
    assert len(list(csv.DictReader(io.StringIO(peer5)))) == 1

    params = {
        "account_id": CREDENTIALS["sealmetrics"]["account_id"],
        "export_type": "pages",
        "date_from": "2024-04-15",
        "date_to": "2024-04-15",
        "filters": {},
    }
    expected_pages = b"".join(sealmetrics_file_chunks(config, params, "csv"))
    assert (root / "sealmetrics" / "2024-04-15" / "pages.csv").read_bytes() == expected_pages
