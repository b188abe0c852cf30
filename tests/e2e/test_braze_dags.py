"""braze_sessions_daily run by real Airflow against the sandbox; files compared with sandbox.data."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from analytics_export_sandbox import SandboxServer, connection_env
from analytics_export_sandbox.airflow_runner import AirflowRunner
from analytics_export_sandbox.braze import braze_window

UTC = dt.timezone.utc


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _csv_time(iso: str) -> str:
    """A UTC ISO time as the csv writes a ``timestamp[us, tz=UTC]`` cell (see README, file formats)."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S.%fZ")


def _expected(sandbox: SandboxServer, first: dt.date, days: int) -> list[dict[str, str]]:
    start = dt.datetime.combine(first, dt.time(), UTC)
    return [
        {
            "time": point["time"],
            "bucket_start": _csv_time(point["bucket_start"]),
            "sessions": str(point["sessions"]),
            "app_id": "",
            "segment_id": "",
            "_extra": "",
        }
        for point in braze_window(sandbox.config, start, start + dt.timedelta(days=days), "day")
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


def test_new_york_workspace_days_across_dst_paced_by_the_pool_headers(
    airflow_runner: AirflowRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    """Company time zone New York (a 23-hour day on 03-10), the zone set as the connection extra, and a
    pool of one request per 3 s: the second request waits for X-RateLimit-Reset instead of a 429."""
    sandbox_reset.config.update(
        {"braze_timezone": "America/New_York", "braze_rate_limit": 1, "braze_rate_window": 3.0}
    )
    conn = json.loads(connection_env(sandbox_reset.url)["AIRFLOW_CONN_BRAZE_DEFAULT"])
    conn["extra"] = {"timezone": "America/New_York"}
    zone = ZoneInfo("America/New_York")
    start, end = (dt.datetime(2024, m, d, tzinfo=zone) for m, d in ((1, 1), (5, 1)))  # 121 local days
    conf = {"start": start.isoformat(), "end": end.isoformat()}
    result = airflow_runner.cli(
        "dags",
        "test",
        "braze_sessions_daily",
        "2024-06-02",
        "--conf",
        json.dumps(conf),
        env={"AIRFLOW_CONN_BRAZE_DEFAULT": json.dumps(conn)},
        check=False,
    )
    assert "state=success" in result.stdout + result.stderr, (result.stdout + result.stderr)[-4000:]

    # A start/end override is written to its own partition, named by the bounds as given.
    rows = _rows(export_root / "braze" / "reexport" / f"{conf['start']}_{conf['end']}" / "sessions.csv")
    truth = braze_window(sandbox_reset.config, start.astimezone(UTC), end.astimezone(UTC), "day")
    assert rows == [
        {
            **{k: str(v) for k, v in point.items()},
            "bucket_start": _csv_time(point["bucket_start"]),
            "app_id": "",
            "segment_id": "",
            "_extra": "",
        }
        for point in truth
    ]
    assert len(rows) == 121
    assert [row["bucket_start"] for row in rows[68:71]] == [
        "2024-03-09 05:00:00.000000Z",
        "2024-03-10 05:00:00.000000Z",
        "2024-03-11 04:00:00.000000Z",  # after the spring-forward day
    ]
    braze = [entry for entry in sandbox_reset.requests_log if entry["api"] == "braze"]
    assert [entry["status"] for entry in braze] == [200, 200]
    assert braze[1]["wall"] // 3 > braze[0]["wall"] // 3  # the second waited for the next window
