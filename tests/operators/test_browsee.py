"""BrowseeSessionsExportOperator.execute against the sandbox, files read back row by row."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.browsee import BROWSEE_SESSIONS, ID_FIELD
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from analytics_export_sandbox.browsee import browsee_sessions
from tests.scripted_server import Reply
from tests.typed import csv_rows, parquet_rows

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)
CONTEXT = {"data_interval_start": START, "data_interval_end": END}


def expected(sandbox, **kwargs) -> list[dict]:
    """The window's sessions as the sandbox sends them (what jsonl keeps)."""
    return list(browsee_sessions(sandbox.config, int(START.timestamp()), int(END.timestamp()), **kwargs))


def schema(fields: list[str] | None = None):
    return BROWSEE_SESSIONS.select(fields, keep=[ID_FIELD]) if fields else BROWSEE_SESSIONS


def test_jsonl_export_of_the_data_interval(sandbox_reset, tmp_path: Path):
    op = BrowseeSessionsExportOperator(task_id="t", destination=(tmp_path / "s.jsonl").as_uri())
    result = op.execute(CONTEXT)
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert rows == expected(sandbox_reset)
    assert result["rows"] == 480 and result["pages"] == 5 and result["format"] == "jsonl"
    assert result["window_start"] == "2024-04-15T00:00:00+00:00"
    assert result["window_end"] == "2024-04-16T00:00:00+00:00"


def test_parquet_and_csv_exports_hold_the_same_rows(sandbox_reset, tmp_path: Path):
    want = expected(sandbox_reset)
    BrowseeSessionsExportOperator(task_id="p", destination=(tmp_path / "s.parquet").as_uri()).execute(CONTEXT)
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.to_pylist() == parquet_rows(want, BROWSEE_SESSIONS)
    assert table.schema == BROWSEE_SESSIONS.arrow()

    fields = ["userId", "duration", "country"]
    op = BrowseeSessionsExportOperator(task_id="c", destination=(tmp_path / "s.csv").as_uri(), fields=fields)
    op.execute(CONTEXT)
    with (tmp_path / "s.csv").open(newline="") as handle:
        want = csv_rows(expected(sandbox_reset, fields=fields), schema(fields))
        assert list(csv.DictReader(handle)) == want
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "sessionId,userId,duration,country,_extra"


def test_memory_destination_and_explicit_window(sandbox_reset, memory_fs):
    start, end = "2024-04-15T06:00:00+00:00", "2024-04-15T07:00:00+00:00"
    op = BrowseeSessionsExportOperator(
        task_id="m", destination="memory://exports/s.jsonl", start=start, end=end
    )
    result = op.execute({})
    rows = [json.loads(line) for line in memory_fs.cat("/exports/s.jsonl").decode().splitlines()]
    want = list(
        browsee_sessions(
            sandbox_reset.config, int(START.timestamp()) + 6 * 3600, int(START.timestamp()) + 7 * 3600
        )
    )
    assert rows == want and result["rows"] == len(want) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 500}, r"page_size=500 is out of range: use an integer from 1 to 100"),
        ({"fields": ["duration", "mood"]}, r"fields=\['duration', 'mood'\] has unknown value\(s\) 'mood'"),
        ({"output_format": "xlsx"}, r"output_format='xlsx' is not supported; use one of jsonl, csv, parquet"),
        (
            {"destination": "file:///tmp/s.txt"},
            r"Cannot tell the output format of destination='file:///tmp/s.txt'",
        ),
        ({"start": "yesterday"}, r"start='yesterday' is not a date or datetime"),
    ],
)
def test_bad_input_is_rejected_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BrowseeSessionsExportOperator(task_id="bad", **{"destination": "file:///tmp/s.jsonl", **kwargs})


def test_templated_fields_are_checked_after_rendering_before_any_request(sandbox_reset, tmp_path):
    op = BrowseeSessionsExportOperator(
        task_id="tpl", destination=(tmp_path / "s.jsonl").as_uri(), fields=["{{ params.field }}"]
    )
    assert "fields" in op.template_fields and "browsee_conn_id" in op.template_fields
    op.fields = ["mood"]  # what rendering would produce
    with pytest.raises(ValueError, match=r"unknown value\(s\) 'mood'"):
        op.execute(CONTEXT)
    assert sandbox_reset.requests_log == []


def test_empty_data_interval_fails_with_a_fix(sandbox_reset, tmp_path):
    op = BrowseeSessionsExportOperator(task_id="e", destination=(tmp_path / "s.jsonl").as_uri())
    with pytest.raises(ValueError, match=r"Empty export window.*CronDataIntervalTimetable"):
        op.execute({"data_interval_start": START, "data_interval_end": START})
    assert sandbox_reset.requests_log == []


def test_a_short_export_leaves_no_file(scripted, monkeypatch, tmp_path):
    conn = {"conn_type": "browsee", "host": scripted.url, "login": "k", "password": "s"}
    monkeypatch.setenv("AIRFLOW_CONN_BROWSEE_SHORT", json.dumps(conn))
    data = [{"sessionId": i, "timestamp": int(START.timestamp() * 1000) + n} for n, i in enumerate("ab")]
    scripted.queue(
        Reply(200, {"status": "success", "exports": {"total": 4, "to": 2, "data": data}}),
        Reply(200, {"status": "success", "exports": {"total": 4, "to": 2, "data": []}}),
    )
    op = BrowseeSessionsExportOperator(
        task_id="s", destination=(tmp_path / "s.jsonl").as_uri(), browsee_conn_id="browsee_short"
    )
    with pytest.raises(ExportIntegrityError, match="empty page 2 after 2 of 4 rows"):
        op.execute(CONTEXT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_sparse_sessions_without_ids_and_an_inclusive_end_give_exact_files(sandbox_reset, tmp_path, fmt):
    """Optional fields absent (not null) on some pages, no sessionId, end inclusive: every format exact."""
    sandbox_reset.config.update(
        {"browsee_sparse": True, "browsee_session_id": False, "browsee_end_inclusive": True}
    )
    raw = list(browsee_sessions(sandbox_reset.config, int(START.timestamp()), int(END.timestamp())))
    assert any("name" not in row for row in raw[:100]) and any("name" in row for row in raw[100:])
    destination = (tmp_path / f"s.{fmt}").as_uri()
    BrowseeSessionsExportOperator(task_id="sparse", destination=destination, page_size=50).execute(CONTEXT)

    if fmt == "jsonl":  # as sent: absent fields stay absent
        assert [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()] == raw
    elif fmt == "csv":
        with (tmp_path / "s.csv").open(newline="") as handle:
            assert list(csv.DictReader(handle)) == csv_rows(raw, BROWSEE_SESSIONS)
    else:  # every declared column, typed, even those the first page lacked
        table = pq.read_table(tmp_path / "s.parquet")
        assert table.to_pylist() == parquet_rows(raw, BROWSEE_SESSIONS)
        assert table.schema == BROWSEE_SESSIONS.arrow()


def test_open_readings_session_at_midnight_no_ids_sparse_fields(sandbox_reset, tmp_path: Path):
    """End inclusive, no sessionId, optional fields absent; seed 83 starts a session 0.348 s after
    midnight of 2024-04-16, which the 04-15 request (end = that midnight) gets back as well.

    Two consecutive days, each as the example DAG exports it (jsonl, parquet, a csv of a few
    columns): in-process, as these readings are the hook's business, not Airflow's (moved from
    tests/e2e, where it cost two Airflow runs).
    """
    sandbox_reset.config.update(
        {"seed": 83, "browsee_end_inclusive": True, "browsee_session_id": False, "browsee_sparse": True}
    )
    csv_fields = ["userId", "timestamp", "duration", "activeTime", "pageCount", "country", "device"]
    jsonl_by_day = []
    for start in (START, END):
        end = start + dt.timedelta(days=1)
        context = {"data_interval_start": start, "data_interval_end": end}
        folder = tmp_path / start.date().isoformat()
        for name, fields in (("s.jsonl", None), ("s.parquet", None), ("s.csv", csv_fields)):
            BrowseeSessionsExportOperator(
                task_id=name.replace(".", "_"), destination=(folder / name).as_uri(), fields=fields
            ).execute(context)
        bounds = int(start.timestamp()), int(end.timestamp())
        want = list(browsee_sessions(sandbox_reset.config, *bounds))
        jsonl = [json.loads(line) for line in (folder / "s.jsonl").read_text().splitlines()]
        assert len(want) == 480 and jsonl == want
        assert pq.read_table(folder / "s.parquet").to_pylist() == parquet_rows(want, BROWSEE_SESSIONS)
        with (folder / "s.csv").open(newline="") as handle:
            narrow = list(browsee_sessions(sandbox_reset.config, *bounds, fields=csv_fields))
            assert list(csv.DictReader(handle)) == csv_rows(narrow, schema(csv_fields))
        jsonl_by_day.append(jsonl)
    first, second = jsonl_by_day
    midnight = int(END.timestamp() * 1000)
    assert second[0]["timestamp"] == midnight + 348
    assert all(row["timestamp"] < midnight for row in first)
    assert all(row.get("sessionId") is None for row in first + second)
    served = [e for e in sandbox_reset.requests_log if e["api"] == "browsee" and e["status"] == 200]
    assert served  # the one-open-request rule still holds with these readings
    assert not any(e["overlap"] for e in sandbox_reset.requests_log)
