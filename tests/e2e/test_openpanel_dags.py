"""openpanel_events_daily and openpanel_charts_weekly run by real Airflow; files compared row by row."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq

from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import openpanel_chart, openpanel_events
from airflow_provider_analytics_export.writer import encode_value


def day_events(sandbox: SandboxServer, day: dt.date, **kwargs) -> list[dict]:
    return list(openpanel_events(sandbox.config, "proj-web", day, day, **kwargs))


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def as_csv(rows: list[dict]) -> list[dict]:
    return [
        {key: "" if value is None else str(encode_value(value)) for key, value in row.items()} for row in rows
    ]


def assert_day_exported(sandbox: SandboxServer, export_root: Path, day: dt.date) -> list[dict]:
    folder = export_root / "openpanel" / day.isoformat()
    want = day_events(sandbox, day)
    assert len(want) == 2400
    jsonl = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert jsonl == want
    assert pq.read_table(folder / "events.parquet").to_pylist() == [
        {key: encode_value(value) for key, value in row.items()} for row in want
    ]
    conversions = day_events(sandbox, day, events=["purchase", "sign_up"], includes=["meta"])
    assert conversions and csv_rows(folder / "conversions.csv") == as_csv(conversions)
    return jsonl


def test_consecutive_daily_runs_export_each_day_once(airflow_run, sandbox_reset, export_root):
    airflow_run("openpanel_events_daily", "2024-04-16")
    airflow_run("openpanel_events_daily", "2024-04-17")
    first = assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 15))
    second = assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 16))
    ids = [row["id"] for row in first + second]
    assert len(ids) == len(set(ids)) == 4800
    assert {row["createdAt"][:10] for row in first} == {"2024-04-15"}


def test_faults_on_a_fixed_share_of_requests_give_the_same_files(airflow_run, sandbox_reset, export_root):
    kinds = ["500", "502", "503", "429", "drop", "truncate"]
    sandbox_reset.config.update({"faults": {"rate": 0.25, "seed": 3, "kinds": kinds}})
    airflow_run("openpanel_events_daily", "2024-04-20")
    assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 19))
    assert len([entry for entry in sandbox_reset.requests_log if entry["fault"]]) >= 2


def test_weekly_chart_has_one_row_per_series_and_day(airflow_run, sandbox_reset, export_root):
    # The run at Monday 2024-04-22 covers the week [2024-04-15, 2024-04-22).
    airflow_run("openpanel_charts_weekly", "2024-04-22")
    rows = csv_rows(export_root / "openpanel-charts" / "2024-04-15" / "users_revenue_by_country.csv")
    events = [
        {"name": "screen_view", "segment": "user", "filters": [], "property": None},
        {
            "name": "purchase",
            "segment": "property_sum",
            "property": "properties.total",
            "filters": [{"name": "properties.total", "operator": "isNotNull", "value": []}],
        },
    ]
    chart = openpanel_chart(
        sandbox_reset.config,
        "proj-web",
        events,
        [{"name": "country"}],
        "day",
        "2024-04-15",
        "2024-04-21",
        True,
    )
    want = [
        {
            "series_id": series["id"],
            "event": series["event"]["name"],
            "names": series["names"],
            "breakdown_country": series["names"][1],
            "date": point["date"],
            "count": point["count"],
            "previous_value": point["previous"]["value"],
            "previous_change": point["previous"]["change"],
        }
        for series in chart["series"]
        for point in series["data"]
    ]
    assert len(rows) == 2 * 5 * 7
    assert rows == as_csv(want)
