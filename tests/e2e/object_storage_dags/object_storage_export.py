"""One Browsee day into object storage, as README "Object storage" shows (tests/e2e/test_object_storage.py).

The destination root and its connection come from Variables, so one DAG runs against the local
S3 server (``s3://...`` with an ``aws`` connection) and the Azure Blob emulator (``abfs://...``
with an ``adls`` connection).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator

with DAG(
    dag_id="object_storage_export",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
):
    BrowseeSessionsExportOperator(
        task_id="export_sessions",
        destination="{{ var.value.storage_root }}/browsee/{{ data_interval_start | ds }}/sessions.parquet",
        destination_conn_id="{{ var.value.storage_conn_id }}",
    )
