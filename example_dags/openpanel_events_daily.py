"""OpenPanel events by day: every event created in the daily data interval, exactly once.

OpenPanel dates are inclusive days, so the run for 2024-04-15 asks for 2024-04-15..2024-04-15
(and an hourly schedule would keep only its hour). Files under ``openpanel/<data interval
start>/``: all events as JSON lines and as Parquet, and conversions with their event
metadata as CSV. The project comes from the connection's ``project_id`` extra.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable

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
