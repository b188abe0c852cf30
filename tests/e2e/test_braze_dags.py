"""braze_sessions_daily run by real Airflow against the sandbox; files compared with sandbox.data."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.airflow_runner import AirflowRunner
from airflow_provider_analytics_export.sandbox.data import braze_series

UTC = dt.timezone.utc


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _expected(sandbox: SandboxServer, first: dt.date, days: int) -> list[dict[str, str]]:
    last = dt.datetime.combine(first, dt.time(), UTC) + dt.timedelta(days=days - 1)
    return [
        {"time": point["time"], "sessions": str(point["sessions"]), "app_id": "", "segment_id": ""}
        for point in braze_series(sandbox.config, days, "day", last)
    ]


def test_daily_run_exports_its_day(airflow_run, sandbox_reset: SandboxServer, export_root: Path) -> None:
    # A manual run at 2024-03-11 covers the last complete interval, [2024-03-10, 2024-03-11).
    airflow_run("braze_sessions_daily", "2024-03-11")

    rows = _rows(export_root / "braze" / "2024-03-10" / "sessions.csv")
    assert rows == _expected(sandbox_reset, dt.date(2024, 3, 10), 1)
    assert [entry["api"] for entry in sandbox_reset.requests_log] == ["braze"]


def test_250_day_window_arrives_as_three_requests_and_each_day_once(
    airflow_runner: AirflowRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    first, end = dt.date(2024, 1, 1), dt.date(2024, 1, 1) + dt.timedelta(days=250)
    conf = {"start": first.isoformat(), "end": end.isoformat()}
    # The run's own interval is [end, end + 1 day): the conf window replaces it and is written
    # to its own partition (it used to replace that day's file).
    logical_date = (end + dt.timedelta(days=1)).isoformat()
    result = airflow_runner.cli(
        "dags", "test", "braze_sessions_daily", logical_date, "--conf", json.dumps(conf), check=False
    )
    assert "state=success" in result.stdout + result.stderr, (result.stdout + result.stderr)[-4000:]

    rows = _rows(export_root / "braze" / "reexport" / f"{first}_{end}" / "sessions.csv")
    assert not (export_root / "braze" / end.isoformat()).exists()
    assert len(rows) == 250
    assert len({row["time"] for row in rows}) == 250
    assert rows == _expected(sandbox_reset, first, 250)
    braze_requests = [entry for entry in sandbox_reset.requests_log if entry["api"] == "braze"]
    assert len(braze_requests) == 3
    assert all(entry["status"] == 200 for entry in braze_requests)
