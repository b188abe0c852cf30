"""An export that wrote no rows while a filter was set warns, naming the filters (issue 21)."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.empty_export import nothing_matched_message
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator
from tests.operators.test_base import END, START, run_like_airflow
from tests.operators.test_base import logs as logs  # the fixture

INTERVAL = {"data_interval_start": START, "data_interval_end": END}
WARNING = "The export wrote 0 rows with filters"


def test_a_profile_that_matches_nothing_warns_naming_the_filter(sandbox_reset, tmp_path: Path, logs):
    with DAG("empty", schedule=None):
        op = OpenPanelEventsExportOperator(
            task_id="t", destination=(tmp_path / "e.jsonl").as_uri(), profile_id="no-such-profile"
        )
    result = run_like_airflow(op, INTERVAL)
    assert result["rows"] == 0 and (tmp_path / "e.jsonl").read_bytes() == b""
    assert f"{WARNING} profile_id='no-such-profile': nothing in the window matched them" in logs()


def test_a_filtered_export_with_rows_does_not_warn(sandbox_reset, tmp_path: Path, logs):
    with DAG("not_empty", schedule=None):
        op = OpenPanelEventsExportOperator(
            task_id="t", destination=(tmp_path / "e.jsonl").as_uri(), events=["screen_view"]
        )
    assert run_like_airflow(op, INTERVAL)["rows"] > 0
    assert WARNING not in logs()


def test_only_filters_that_were_set_are_named():
    with DAG("names", schedule=None):
        op = OpenPanelEventsExportOperator(
            task_id="t", destination="memory://x/e.jsonl", events=["signup"], profile_id=""
        )
    message = nothing_matched_message(op, op.filter_fields, {"rows": 0})
    assert message is not None and "events=['signup']" in message and "profile_id" not in message
    assert nothing_matched_message(op, op.filter_fields, {"rows": 3}) is None
    with DAG("unfiltered", schedule=None):
        quiet = BrowseeSessionsExportOperator(task_id="t", destination="memory://x/s.jsonl", segment_id=None)
    assert nothing_matched_message(quiet, quiet.filter_fields, {"rows": 0}) is None  # a quiet day
