"""OpenPanel events by hour, while the project keeps receiving live traffic.

Each run exports the hour that just ended. Its day is today (but for the midnight run, which
exports yesterday's last hour, already settled), so new events keep landing on top of
OpenPanel's newest-first listing while the run pages through it: the hook then reads
the pages one after another, drops the rows a shift repeats, and stops once it is past the
hour (see the README's "OpenPanel: what the server really does"). Files under
``openpanel-hourly/<data interval start>/events.jsonl``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

with DAG(
    dag_id="openpanel_events_hourly",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["analytics-export", "openpanel"],
):
    OpenPanelEventsExportOperator(
        task_id="export_hour",
        destination=(
            "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
            "/openpanel-hourly/{{ data_interval_start | ts_nodash }}/events.jsonl"
        ),
    )
