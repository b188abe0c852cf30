"""OpenPanel events by day: every event created in the daily data interval, exactly once.

OpenPanel dates are inclusive UTC days, so the run for 2024-04-15 asks for 2024-04-15..2024-04-15
(an hourly schedule keeps only its hour: see ``openpanel_events_hourly``). Files under
``openpanel/<data interval start>/``, newest event first: every event with all its fields
(properties included) as JSON lines and as Parquet; conversions (two event names) with their
event metadata as CSV; page views narrowed to a few columns; and one customer's events (the
``openpanel_profile_id`` Variable; the server adds the anonymous events of that customer's
devices from before they signed in). The project comes from the connection's ``project_id``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

PARTITION = (
    "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
    "/openpanel/{{ data_interval_start | ds }}"
)

with DAG(
    dag_id="openpanel_events_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "openpanel"],
):
    OpenPanelEventsExportOperator(task_id="export_events_jsonl", destination=f"{PARTITION}/events.jsonl")
    OpenPanelEventsExportOperator(task_id="export_events_parquet", destination=f"{PARTITION}/events.parquet")
    OpenPanelEventsExportOperator(
        task_id="export_conversions_csv",
        destination=f"{PARTITION}/conversions.csv",
        events=["purchase", "sign_up"],
        includes=["meta"],
    )
    OpenPanelEventsExportOperator(
        task_id="export_page_views_narrow",
        destination=f"{PARTITION}/page_views.csv",
        events="screen_view",
        fields=["name", "profileId", "path", "country", "properties"],
    )
    OpenPanelEventsExportOperator(
        task_id="export_one_profile",
        destination=f"{PARTITION}/profile.jsonl",
        profile_id="{{ var.value.get('openpanel_profile_id', '100017') }}",
    )
