"""BrazeSessionsExportOperator: construction checks and a real export to file://."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import braze_series

UTC = dt.timezone.utc


def test_bad_unit_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match=r"unit='week' is not a Braze series unit; use one of day, hour\."):
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
    expected = braze_series(
        sandbox_reset.config, 150, "hour", start + dt.timedelta(hours=149), "app-1", "seg-2"
    )
    assert rows == [
        {"time": p["time"], "sessions": str(p["sessions"]), "app_id": "app-1", "segment_id": "seg-2"}
        for p in expected
    ]
    assert summary["rows"] == 150
    assert summary["requests"] == 2
