"""What every export operator shares: the closing log line and the no-data-interval message."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_analytics_export.operators.base import closing_line, display_uri
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from analytics_export_sandbox.credentials import CREDENTIALS

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)
CLOSING = re.compile(
    r"Export written: (?P<uri>\S+) rows=(?P<rows>\d+) bytes=(?P<bytes>\d+) format=(?P<format>\w+) "
    r"window=(?P<window>.+?) wall_time=(?P<seconds>[\d.]+)s "
    r"requests=(?P<requests>\d+) retries=(?P<retries>\d+)"
)


@pytest.fixture
def logs(caplog, capsys):
    """Everything logged: stdlib records and Airflow's structlog output."""
    caplog.set_level(logging.INFO)
    return lambda: caplog.text + capsys.readouterr().out


def run_like_airflow(operator: Any, context: dict[str, Any]) -> Any:
    """pre_execute, execute, then the post_execute hook, in the task runner's order."""
    context = {**context, "task": operator, "outlet_events": OutletEventAccessors()}
    operator.pre_execute(context)
    result = operator.execute(context)
    operator._post_execute_hook(context, result)
    return result


def test_closing_line_counts_every_request_and_retry_the_export_made(sandbox_reset, tmp_path: Path, logs):
    sandbox_reset.config.update({"faults": {"rate": 0.3, "seed": 5, "kinds": ["500", "503", "drop"]}})
    with DAG("closing_line", schedule=None):
        op = BrowseeSessionsExportOperator(task_id="t", destination=(tmp_path / "s.jsonl").as_uri())
    result = run_like_airflow(op, {"data_interval_start": START, "data_interval_end": END})

    [line] = [match.groupdict() for match in CLOSING.finditer(logs())]
    calls = [entry for entry in sandbox_reset.requests_log if entry["api"] == "browsee"]
    faults = [entry for entry in calls if entry["fault"]]
    assert faults, "the seed must inject at least one fault for this test to mean anything"
    assert line["uri"] == (tmp_path / "s.jsonl").as_uri()
    assert (int(line["rows"]), int(line["bytes"]), line["format"]) == (480, result["bytes"], "jsonl")
    assert result["bytes"] == (tmp_path / "s.jsonl").stat().st_size
    assert line["window"] == "[2024-04-15T00:00:00+00:00, 2024-04-16T00:00:00+00:00)"
    assert (int(line["requests"]), int(line["retries"])) == (len(calls), len(faults))
    assert CREDENTIALS["browsee"]["secret_key"] not in logs()


def test_closing_line_of_a_date_export_and_a_destination_with_secrets():
    result = {
        "uri": "https://user:hunter22@files.example.com/x.csv?sig=s3cret",
        "rows": 3,
        "bytes": 10,
        "format": "csv",
        "date_from": "2024-03-09",
        "date_to": "2024-03-10",
    }
    line = closing_line(result, 2.04, 7, 1)
    assert line == (
        "Export written: https://files.example.com/x.csv rows=3 bytes=10 format=csv "
        "window=2024-03-09..2024-03-10 (dates, inclusive) wall_time=2.0s requests=7 retries=1"
    )
    assert display_uri("s3://aws_moto@exports/a/b.parquet") == "s3://exports/a/b.parquet"


def no_interval_context(operator: Any, **params: Any) -> dict[str, Any]:
    """The template context of a run triggered without a logical date: no interval keys at all."""
    return {"params": params, "task": operator, "dag": operator.dag, "run_id": "manual__no_date"}


def test_run_without_data_interval_fails_with_a_clear_message_not_a_jinja_error():
    with DAG("no_interval", schedule=None):
        op = BrowseeSessionsExportOperator(
            task_id="t", destination="file:///tmp/x/browsee/{{ data_interval_start | ds }}/s.jsonl"
        )
    with pytest.raises(ValueError, match="no data interval: it was triggered without a logical date") as info:
        op.render_template_fields(no_interval_context(op))
    assert "'data_interval_start' is undefined" in str(info.value)  # the Jinja cause, for the record
    assert "start=/end=" in str(info.value) and "airflow dags test DAG_ID" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no Jinja traceback first


def test_other_undefined_template_variables_keep_jinjas_own_error():
    import jinja2

    with DAG("no_interval_typo", schedule=None):
        op = BrowseeSessionsExportOperator(task_id="t", destination="file:///tmp/{{ dat_interval }}/s.jsonl")
    with pytest.raises(jinja2.UndefinedError, match="'dat_interval' is undefined"):
        op.render_template_fields(no_interval_context(op))
