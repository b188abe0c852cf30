"""Braze sessions by day: one CSV per daily data interval.

Trigger with config ``{"start": "2024-01-01", "end": "2024-09-07"}`` to re-export a longer
window in one run; the operator splits it into requests of at most 100 days. Such a run writes
to its own partition, ``braze/reexport/<start>_<end>/``, never over a day's file; with both
start and end it needs no logical date. Run one chosen day with
``airflow dags test braze_sessions_daily 2024-04-16`` (the daily interval ending then: 2024-04-15).

Days are the workspace's local days: for a workspace outside UTC, set the connection extra
``timezone`` (e.g. ``America/New_York``) and schedule in that zone,
``CronDataIntervalTimetable("@daily", timezone="America/New_York")``, so each run covers
whole days (a window cutting a day is refused).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator

EXPORT_ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
PARTITION = (
    "{% if params.start or params.end %}"
    "reexport/{{ params.start or (data_interval_start | ds) }}_{{ params.end or (data_interval_end | ds) }}"
    "{% else %}{{ data_interval_start | ds }}{% endif %}"
)

with DAG(
    dag_id="braze_sessions_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "braze"],
    params={
        "start": Param(None, type=["null", "string"], description="Override the window start (ISO-8601)."),
        "end": Param(None, type=["null", "string"], description="Override the window end (ISO-8601)."),
    },
):
    BrazeSessionsExportOperator(
        task_id="export_sessions",
        destination=f"{EXPORT_ROOT}/braze/{PARTITION}/sessions.csv",
        start="{{ params.start or data_interval_start }}",
        end="{{ params.end or data_interval_end }}",
        unit="day",
    )
