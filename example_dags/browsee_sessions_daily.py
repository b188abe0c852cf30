"""Browsee sessions by day: every session that started in the daily data interval, exactly once.

Three files per day under ``browsee/<data interval start>/``: all fields as JSON lines and
as Parquet, and a few columns as CSV. Browsee allows one open request per account; the
tasks share one slot on the machine with no configuration (across machines, set the
connection's ``limit_backend`` extra to a Redis).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator

PARTITION = (
    "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
    "/browsee/{{ data_interval_start | ds }}"
)

with DAG(
    dag_id="browsee_sessions_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_tasks=1,
    tags=["analytics-export", "browsee"],
):
    BrowseeSessionsExportOperator(task_id="export_sessions_jsonl", destination=f"{PARTITION}/sessions.jsonl")
    BrowseeSessionsExportOperator(
        task_id="export_sessions_parquet", destination=f"{PARTITION}/sessions.parquet"
    )
    BrowseeSessionsExportOperator(
        task_id="export_engagement_csv",
        destination=f"{PARTITION}/engagement.csv",
        fields=["userId", "timestamp", "duration", "activeTime", "pageCount", "country", "device"],
    )
