"""BrazeSessionsExportOperator: construction checks and a real export to file://."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_analytics_export.hooks.braze import BRAZE_SESSIONS
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.braze import braze_window
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc


def test_bad_unit_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match=r"unit='week' is not supported; use one of: day, hour\."):
        BrazeSessionsExportOperator(task_id="t", destination="file:///tmp/x.csv", unit="week")


def test_templated_fields_include_connection_window_and_filters() -> None:
    assert {"braze_conn_id", "app_id", "segment_id", "start", "end", "destination"} <= set(
        BrazeSessionsExportOperator.template_fields
    )


def test_exports_hours_with_app_and_segment_in_every_row(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    start = dt.datetime(2024, 2, 1, tzinfo=UTC)
    operator = BrazeSessionsExportOperator(
        task_id="t",
        destination=(tmp_path / "sessions.csv").as_uri(),
        start=start.isoformat(),
        end=(start + dt.timedelta(hours=150)).isoformat(),
        unit="hour",
        app_id="app-1",
        segment_id="seg-2",
    )

    summary = operator.execute({})

    with (tmp_path / "sessions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = braze_window(
        sandbox_reset.config, start, start + dt.timedelta(hours=150), "hour", "app-1", "seg-2"
    )
    assert rows == [
        {
            "time": p["time"],
            "bucket_start": csv_timestamp(p["bucket_start"]),
            "sessions": str(p["sessions"]),
            "app_id": "app-1",
            "segment_id": "seg-2",
            "_extra": "",
        }
        for p in expected
    ]
    assert summary["rows"] == 150
    assert summary["requests"] == 2
    assert summary["schema"] == BRAZE_SESSIONS.describe()


def csv_timestamp(iso: str) -> str:
    """A UTC ISO time as the csv writes a ``timestamp[us, tz=UTC]`` cell."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S.%fZ")


def test_a_day_unit_on_an_hourly_run_is_refused_before_any_request(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    operator = BrazeSessionsExportOperator(task_id="t", destination=(tmp_path / "s.jsonl").as_uri())
    start = dt.datetime(2024, 2, 1, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"start=2024-02-01T05:00:00\+00:00 does not fall on a unit='day'"):
        operator.execute({"data_interval_start": start, "data_interval_end": start + dt.timedelta(hours=1)})
    assert not sandbox_reset.requests_log
    assert not (tmp_path / "s.jsonl").exists()


def test_a_point_with_fields_nobody_declared_keeps_them_in_extra(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A sparse point (no ``sessions``) is null; an unknown field is kept, not dropped or fatal."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_BRAZE_SCRIPTED",
        json.dumps({"conn_type": "braze", "host": scripted.url, "password": "key"}),
    )
    data = [{"time": "2024-02-01", "sessions": 3, "uniques": 2}, {"time": "2024-02-02"}]
    scripted.queue(Reply(200, {"message": "success", "data": data}))
    operator = BrazeSessionsExportOperator(
        task_id="t",
        braze_conn_id="braze_scripted",
        destination=(tmp_path / "s.parquet").as_uri(),
        start="2024-02-01",
        end="2024-02-03",
    )

    operator.execute({})

    assert pq.read_table(tmp_path / "s.parquet").to_pylist() == [
        {
            "time": "2024-02-01",
            "bucket_start": dt.datetime(2024, 2, 1, tzinfo=UTC),
            "sessions": 3,
            "app_id": None,
            "segment_id": None,
            "_extra": '{"uniques":2}',
        },
        {
            "time": "2024-02-02",
            "bucket_start": dt.datetime(2024, 2, 2, tzinfo=UTC),
            "sessions": None,
            "app_id": None,
            "segment_id": None,
            "_extra": None,
        },
    ]
