"""OpenPanel events/charts operators' execute against the sandbox, files read back row by row."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.openpanel_query import EVENT_FIELDS, OPENPANEL_EVENTS
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.windows import bucket_starts
from analytics_export_sandbox.openpanel import openpanel_chart, openpanel_events
from tests.typed import csv_rows, parquet_rows

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)
CONTEXT = {"data_interval_start": START, "data_interval_end": END}


def expected(sandbox, **kwargs) -> list[dict]:
    return list(openpanel_events(sandbox.config, "proj-web", "2024-04-15", "2024-04-15", **kwargs))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_events_export_in_every_format(sandbox_reset, tmp_path: Path, fmt: str):
    path = tmp_path / f"events.{fmt}"
    op = OpenPanelEventsExportOperator(
        task_id=fmt, destination=path.as_uri(), includes="profile", page_size=500
    )
    result = op.execute(CONTEXT)
    want = expected(sandbox_reset, includes=["profile"])
    assert result["rows"] == 2400 and result["pages"] == 5
    if fmt == "jsonl":
        assert [json.loads(line) for line in path.read_text().splitlines()] == want
        return
    schema = OPENPANEL_EVENTS.select([*EVENT_FIELDS, "profile"])
    assert result["schema"] == schema.describe()
    if fmt == "parquet":
        table = pq.read_table(path)
        assert table.to_pylist() == parquet_rows(want, schema) and table.schema == schema.arrow()
    else:
        with path.open(newline="") as handle:
            got = list(csv.DictReader(handle))
        assert got == csv_rows(want, schema)


def test_hourly_runs_tile_the_day(sandbox_reset, memory_fs):
    rows = []
    for hour in reversed(range(24)):  # newest first, like the rows inside each file
        start = START + dt.timedelta(hours=hour)
        op = OpenPanelEventsExportOperator(task_id=f"h{hour}", destination=f"memory://op/{hour}.jsonl")
        op.execute({"data_interval_start": start, "data_interval_end": start + dt.timedelta(hours=1)})
        rows += [json.loads(line) for line in memory_fs.cat(f"/op/{hour}.jsonl").decode().splitlines()]
    assert rows == expected(sandbox_reset)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 5000}, r"page_size=5000 is out of range: use an integer from 1 to 1000"),
        ({"max_concurrency": 100}, r"max_concurrency=100 is out of range: use an integer from 1 to 32"),
        ({"includes": ["profile", "geo"]}, r"includes=\['profile', 'geo'\] has unknown value\(s\) 'geo'"),
        ({"output_format": "avro"}, r"output_format='avro' is not supported"),
        ({"end": "2024-13-01"}, r"end='2024-13-01' is not a date or datetime"),
    ],
)
def test_bad_event_input_is_rejected_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OpenPanelEventsExportOperator(task_id="bad", **{"destination": "file:///tmp/e.jsonl", **kwargs})


WEEK = {"data_interval_start": START, "data_interval_end": START + dt.timedelta(days=7)}
EVENTS = [{"name": "screen_view", "segment": "session"}]


def test_chart_export_one_row_per_series_and_day(sandbox_reset, tmp_path: Path):
    path = tmp_path / "chart.jsonl"
    op = OpenPanelChartsExportOperator(
        task_id="c", destination=path.as_uri(), events=json.dumps(EVENTS), breakdowns=[{"name": "device"}]
    )
    result = op.execute(WEEK)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    events = [{"filters": [], "property": None, **EVENTS[0]}]
    want = openpanel_chart(
        sandbox_reset.config,
        "proj-web",
        events,
        [{"name": "device"}],
        "day",
        WEEK["data_interval_start"],
        WEEK["data_interval_end"],
        False,
    )
    assert result["rows"] == 3 * 7 and result["series"] == 3
    assert [(r["breakdown_device"], r["date"], r["count"]) for r in rows] == [
        (series["event"]["breakdowns"]["device"], point["date"].replace(" ", "T") + "+00:00", point["count"])
        for series in want["series"]
        for point in series["data"]
    ]
    assert set(rows[0]) == {"series_id", "event", "names", "breakdown_device", "date", "count"}


def test_chart_with_date_range_ignores_the_data_interval(sandbox_reset, tmp_path: Path):
    op = OpenPanelChartsExportOperator(
        task_id="r", destination=(tmp_path / "c.csv").as_uri(), events=EVENTS, date_range="7d", previous=True
    )
    result = op.execute({})
    # The server's 7d is the 7 days before today plus today (getDatesFromRange).
    assert result["rows"] == 8 and "window_start" not in result
    with (tmp_path / "c.csv").open(newline="") as handle:
        first = list(csv.DictReader(handle))[0]
    assert first.keys() >= {"previous_value", "previous_diff", "previous_state"}
    assert first["previous_state"] in ("positive", "negative", "neutral")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"events": [{"name": "a", "filters": [{"name": "path", "operator": "equals", "value": ["/"]}]}]},
            r"events\[0\].filters\[0\].operator='equals' is not supported; use one of: is, isNot",
        ),
        (
            {"events": [{"name": "a", "segment": "visitors"}]},
            r"events\[0\].segment='visitors' is not supported",
        ),
        ({"breakdowns": [{"name": "planet"}]}, r"breakdowns\[0\].name='planet' is not supported"),
        (
            {"interval": "quarter"},
            r"interval='quarter' is not supported; use one of: minute, hour, day, week",
        ),
        ({"date_range": "3d"}, r"date_range='3d' is not supported; use one of: 30min, lastHour"),
        ({"date_range": "7d", "start": "2024-04-15"}, r"date_range='7d' and start/end are exclusive"),
        ({"events": "not json"}, r"events='not json' is not valid JSON"),
    ],
)
def test_bad_chart_input_is_rejected_at_construction(kwargs, message):
    args = {"destination": "file:///tmp/c.csv", "events": EVENTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        OpenPanelChartsExportOperator(task_id="bad", **args)


def test_chart_window_not_on_interval_boundaries_fails_before_any_request(sandbox_reset, tmp_path):
    op = OpenPanelChartsExportOperator(
        task_id="w", destination=(tmp_path / "c.csv").as_uri(), events=EVENTS, interval="week"
    )
    with pytest.raises(
        ValueError, match=r"start=2024-04-16T00:00:00\+00:00 does not fall on a week boundary"
    ):
        op.execute(
            {
                "data_interval_start": START + dt.timedelta(days=1),
                "data_interval_end": END + dt.timedelta(days=8),
            }
        )
    assert sandbox_reset.requests_log == []


def test_events_to_s3_through_a_destination_connection(sandbox_reset, s3_destination):
    op = OpenPanelEventsExportOperator(
        task_id="s3",
        destination="s3://exports/openpanel/{{ ds }}/events.parquet",
        destination_conn_id=s3_destination,
        events=["purchase"],
    )
    op.destination = op.destination.replace("{{ ds }}", "2024-04-15")  # what rendering produces
    result = op.execute(CONTEXT)
    assert result["uri"].endswith("exports/openpanel/2024-04-15/events.parquet")

    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(result["uri"], conn_id=s3_destination)
    with path.open("rb") as handle:
        rows = pq.read_table(handle).to_pylist()
    want = expected(sandbox_reset, events=["purchase"])
    assert rows == parquet_rows(want, OPENPANEL_EVENTS.select(EVENT_FIELDS)) and rows
    assert [p.name for p in path.parent.iterdir()] == ["events.parquet"]  # no temporary object left


def test_chart_cut_short_by_the_subscription_end_fails(sandbox_reset, tmp_path):
    """The server caps endDate at the organization's subscriptionChartEndDate without a word."""
    cap = (START + dt.timedelta(days=4)).timestamp()
    sandbox_reset.config.update({"openpanel_subscription_chart_end": cap})
    path = tmp_path / "c.csv"
    op = OpenPanelChartsExportOperator(task_id="s", destination=path.as_uri(), events=EVENTS)
    with pytest.raises(ExportIntegrityError, match=r"lacks 3 day bucket\(s\) of the window, from 2024-04-19"):
        op.execute(WEEK)
    assert not path.exists()


def test_bucket_starts_follow_the_organization_calendar():
    zone = ZoneInfo("America/New_York")  # DST starts 2024-03-10: that day has 23 hours
    start, end = dt.datetime(2024, 3, 9, tzinfo=zone), dt.datetime(2024, 3, 12, tzinfo=zone)
    assert [b.isoformat() for b in bucket_starts(start, end, "day", zone)] == [
        "2024-03-09T00:00:00-05:00",
        "2024-03-10T00:00:00-05:00",
        "2024-03-11T00:00:00-04:00",
    ]
    assert (
        len(
            bucket_starts(
                dt.datetime(2024, 3, 10, tzinfo=zone), dt.datetime(2024, 3, 11, tzinfo=zone), "hour", zone
            )
        )
        == 23
    )
