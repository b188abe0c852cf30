"""The OpenPanel example DAGs run by real Airflow against the sandbox's reading of the real server.

Files are compared row by row with the sandbox's truth: multi-event, full-field (properties)
and narrowed exports, a profile (digits-only id, stitched anonymous events), an hourly export
of today under live traffic, and daily (New York organization) and weekly charts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from airflow_provider_analytics_export.files.schemas import Schema
from airflow_provider_analytics_export.hooks.openpanel_charts import chart_schema
from airflow_provider_analytics_export.hooks.openpanel_query import EVENT_FIELDS, OPENPANEL_EVENTS
from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.openpanel import openpanel_chart as sandbox_chart
from analytics_export_sandbox.openpanel import openpanel_events
from tests import typed

UTC = dt.timezone.utc


def day_events(sandbox: SandboxServer, day: dt.date, **kwargs) -> list[dict]:
    return list(openpanel_events(sandbox.config, "proj-web", day, day, **kwargs))


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def as_csv(rows: list[dict], schema: Schema) -> list[dict]:
    """How the csv (written to ``schema``) reads back: see tests/typed.py."""
    return typed.csv_rows(rows, schema)


def assert_day_exported(sandbox: SandboxServer, export_root: Path, day: dt.date) -> list[dict]:
    folder = export_root / "openpanel" / day.isoformat()
    want = day_events(sandbox, day)
    assert len(want) == 2400
    jsonl = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert jsonl == want
    assert pq.read_table(folder / "events.parquet").to_pylist() == typed.parquet_rows(
        want, OPENPANEL_EVENTS.select(EVENT_FIELDS)
    )
    assert list(jsonl[0]) == list(EVENT_FIELDS) and jsonl[0]["properties"]  # the full event
    conversions = day_events(sandbox, day, events=["purchase", "sign_up"], includes=["meta"])
    assert {row["name"] for row in conversions} == {"purchase", "sign_up"}
    conversions_schema = OPENPANEL_EVENTS.select([*EVENT_FIELDS, "meta"])
    assert csv_rows(folder / "conversions.csv") == as_csv(conversions, conversions_schema)
    columns = ["id", "name", "profileId", "createdAt", "path", "country", "properties"]
    views = [{key: row[key] for key in columns} for row in day_events(sandbox, day, events=["screen_view"])]
    assert views and csv_rows(folder / "page_views.csv") == as_csv(views, OPENPANEL_EVENTS.select(columns))
    profile = day_events(sandbox, day, profile_id="100017")
    got = [json.loads(line) for line in (folder / "profile.jsonl").read_text().splitlines()]
    assert got == profile
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


def test_profile_export_holds_the_stitched_anonymous_events(airflow_run, sandbox_reset, export_root):
    airflow_run("openpanel_events_daily", "2024-04-11", AIRFLOW_VAR_OPENPANEL_PROFILE_ID="user_3")
    day = dt.date(2024, 4, 10)
    got = [
        json.loads(line)
        for line in (export_root / "openpanel" / day.isoformat() / "profile.jsonl").read_text().splitlines()
    ]
    assert got == day_events(sandbox_reset, day, profile_id="user_3")


def test_hourly_export_during_live_traffic_is_exact(airflow_run, sandbox_reset, export_root):
    # The run the scheduler makes now: the hour that just ended. Its day is today (live traffic
    # lands on the listing it pages) but from 00:00 to 01:00 UTC, when it is yesterday's last hour
    # (a settled listing, the midnight run of every day): exact either way, so no hour is skipped.
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sandbox_reset.config.update(
        {"openpanel_events_per_day": 200_000, "openpanel_live_events_per_second": 50.0}
    )
    airflow_run("openpanel_events_hourly", hour.isoformat())
    start = hour - dt.timedelta(hours=1)
    path = export_root / "openpanel-hourly" / start.strftime("%Y%m%dT%H%M%S") / "events.jsonl"
    got = [json.loads(line) for line in path.read_text().splitlines()]
    want = [
        row
        for row in openpanel_events(sandbox_reset.config, "proj-web", start.date(), start.date())
        if start.isoformat()
        <= dt.datetime.fromisoformat(row["createdAt"].replace("Z", "+00:00")).isoformat()
        < hour.isoformat()
    ]
    assert len(want) > 5000 and got == want
    # Live events (50/s) arrived all along, on top of the listing the task was paging.
    calls = [entry for entry in sandbox_reset.requests_log if entry["api"] == "openpanel"]
    assert len(calls) >= len(want) // 1000 + 1
    assert (calls[-1]["started"] - calls[0]["started"]) * 50 >= len(calls)


def test_daily_chart_in_a_new_york_organization(airflow_run, sandbox_reset, export_root):
    sandbox_reset.config.update({"openpanel_timezone": "America/New_York"})
    creds = CREDENTIALS["openpanel"]
    conn = {
        "conn_type": "openpanel",
        "host": sandbox_reset.url,
        "login": creds["client_id"],
        "password": creds["client_secret"],
        "extra": {"project_id": "proj-web", "timezone": "America/New_York"},
    }
    # The run at New York midnight of 2024-04-16 covers 2024-04-15 in New York.
    airflow_run(
        "openpanel_charts_daily",
        "2024-04-16T04:00:00+00:00",
        AIRFLOW_CONN_OPENPANEL_DEFAULT=json.dumps(conn),
        OPENPANEL_ORGANIZATION_ZONE="America/New_York",
    )
    rows = csv_rows(export_root / "openpanel-charts-daily" / "2024-04-15" / "views_by_referrer.csv")
    zone = ZoneInfo("America/New_York")
    window = dt.datetime(2024, 4, 15, tzinfo=zone), dt.datetime(2024, 4, 16, tzinfo=zone)
    event = {"name": "screen_view", "segment": "event", "property": None, "filters": []}
    chart = sandbox_chart(
        sandbox_reset.config,
        "proj-web",
        [event],
        [{"name": "referrer"}],
        "day",
        *window,
        True,
        "America/New_York",
    )
    want = [
        {
            "series_id": series["id"],
            "event": "screen_view",
            "names": series["names"],
            "breakdown_referrer": series["event"].get("breakdowns", {}).get("referrer", ""),
            "date": "2024-04-15T00:00:00-04:00",
            "count": point["count"],
            "previous_value": point["previous"]["value"],
            "previous_diff": point["previous"]["diff"],
            "previous_state": point["previous"]["state"],
        }
        for series in chart["series"]
        for point in series["data"]
    ]
    assert len(rows) == 3 and '""' not in {row["breakdown_referrer"] for row in rows}
    assert rows == as_csv(want, chart_schema(["referrer"], previous=True))


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
    week = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 22, tzinfo=UTC)
    chart = sandbox_chart(sandbox_reset.config, "proj-web", events, [{"name": "country"}], "day", *week, True)
    want = [
        {
            "series_id": series["id"],
            "event": series["event"]["name"],
            "names": series["names"],
            "breakdown_country": series["event"]["breakdowns"]["country"],
            "date": point["date"].replace(" ", "T") + "+00:00",
            "count": point["count"],
            "previous_value": point["previous"]["value"],
            "previous_diff": point["previous"]["diff"],
            "previous_state": point["previous"]["state"],
        }
        for series in chart["series"]
        for point in series["data"]
    ]
    assert len(rows) == 2 * 5 * 7
    assert rows == as_csv(want, chart_schema(["country"], previous=True))
