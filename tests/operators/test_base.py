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

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.files.destination import display_uri
from airflow_provider_analytics_export.operators.base import (
    BaseExportOperator,
    FileChunks,
    RowPages,
    closing_line,
)
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

    # Airflow 3.0 also copies stdlib records to stdout: the same line twice is one line.
    [line] = {match.group(0): match.groupdict() for match in CLOSING.finditer(logs())}.values()
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


class _Described(BaseExportOperator):
    """The smallest export: what it writes is fixed at construction."""

    def __init__(self, *, source: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    def export(self, context: Any, output_format: str) -> Any:
        self.seen = (self.export_window(context), output_format)
        return self.source


def test_the_base_writes_pages_once_and_returns_summary_count_fields_and_window(tmp_path: Path, logs):
    pages = [[{"id": "a"}, {"id": "b"}], [], [{"id": "c"}]]
    source = RowPages(window=(START, END), pages=iter(pages), fields={"series": 7}, counted_as="requests")
    op = _Described(
        task_id="t", destination=(tmp_path / "rows.csv").as_uri(), start=START, end=END, source=source
    )

    result = op.execute({})

    assert op.seen == ((START, END), "csv")
    assert (tmp_path / "rows.csv").read_text() == "id\na\nb\nc\n"
    assert result == {
        "uri": (tmp_path / "rows.csv").as_uri(),
        "rows": 3,
        "bytes": len("id\na\nb\nc\n"),
        "format": "csv",
        "requests": 3,
        "series": 7,
        "window_start": START.isoformat(),
        "window_end": END.isoformat(),
        "replaced": True,
        "rows_before": None,
    }
    assert "done in" not in logs()  # no progress label: the hook's pager logs progress


def test_the_base_copies_file_chunks_counting_records_and_logs_progress(tmp_path: Path, logs):
    chunks = [b'id,note\n1,"a\nb"\n', b"2,c\n"]
    source = FileChunks(window=None, chunks=iter(chunks), record_format="csv", progress="Test CSV")
    op = _Described(task_id="t", destination=(tmp_path / "f.csv").as_uri(), source=source)

    result = op.execute({"data_interval_start": START, "data_interval_end": END})

    assert (tmp_path / "f.csv").read_bytes() == b"".join(chunks)
    assert (result["rows"], result["pages"], result["format"]) == (2, 2, "csv")
    assert "window_start" not in result
    text = logs()
    assert "Test CSV: 0.0 MB" in text and "done in" in text


def test_a_failing_page_leaves_the_destination_untouched(tmp_path: Path):
    def pages():
        yield [{"id": "a"}]
        raise ExportIntegrityError("page 2 repeats page 1")

    (tmp_path / "rows.jsonl").write_text("previous\n")
    source = RowPages(window=(START, END), pages=pages())
    op = _Described(
        task_id="t", destination=(tmp_path / "rows.jsonl").as_uri(), start=START, end=END, source=source
    )
    with pytest.raises(ExportIntegrityError, match="page 2 repeats page 1"):
        op.execute({})
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    assert (tmp_path / "rows.jsonl").read_text() == "previous\n"


def test_a_failed_write_closes_the_pages_at_once(tmp_path: Path):
    """The listing (a read-ahead thread, an open response) stops with the failed write, not when
    the traceback that holds it (as a failed task's does) is collected."""
    closed: list[bool] = []

    def pages():
        try:
            yield [{"id": object()}]  # no JSON for it: the write fails
            yield [{"id": "never asked for"}]
        finally:
            closed.append(True)

    source = RowPages(window=(START, END), pages=pages())
    op = _Described(
        task_id="t", destination=(tmp_path / "rows.jsonl").as_uri(), start=START, end=END, source=source
    )
    with pytest.raises(TypeError) as raised:
        op.execute({})
    assert raised.traceback and closed == [True]


def test_lineage_reports_what_execute_wrote(tmp_path: Path):
    """execute -> post_execute -> lineage, as the task runner and the OpenLineage listener call them."""
    chunks = [b'id,note\n1,"a\nb"\n', b"2,c\n"]
    with DAG("lineage_run", schedule=None):
        op = _Described(
            task_id="t",
            destination=(tmp_path / "f.csv").as_uri(),
            source=FileChunks(window=(START, END), chunks=iter(chunks), record_format="csv"),
        )
    result = run_like_airflow(op, {"data_interval_start": START, "data_interval_end": END})

    lineage = op.get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "f.csv"))]
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (result["rows"], result["bytes"]) == (2, 20)
