"""Sealmetrics exports by day: one file per export type and daily data interval.

Two ways to do the same thing:

* ``create_microconversions`` -> ``wait_microconversions`` (deferrable sensor: the wait runs on
  the triggerer, no worker slot held) -> ``download_microconversions``: each step visible.
* ``export``: the one-task operator mapped over several export types. Small exports are
  streamed; large ones become a background job that is waited for on the triggerer and then
  downloaded. A retry reconnects to the job the task already created.

The two ways write to different files (``step_by_step/microconversions.csv`` and
``microconversions.csv``), so their two jobs never replace each other's file. Run one chosen
day with ``airflow dags test sealmetrics_exports_daily 2024-04-16`` (it exports 2024-04-15).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsCreateExportOperator,
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from airflow_provider_analytics_export.sensors.sealmetrics import SealmetricsExportSensor

EXPORT_ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
DAY_DIR = f"{EXPORT_ROOT}/sealmetrics/{{{{ data_interval_start | ds }}}}"
POLL_SECONDS = 5

with DAG(
    dag_id="sealmetrics_exports_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "sealmetrics"],
):
    create = SealmetricsCreateExportOperator(
        task_id="create_microconversions", export_type="microconversions"
    )
    wait = SealmetricsExportSensor(
        task_id="wait_microconversions",
        job_id=create.output,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
    )
    download = SealmetricsDownloadExportOperator(
        task_id="download_microconversions",
        job_id=create.output,
        destination=f"{DAY_DIR}/step_by_step/microconversions.csv",
    )
    create >> wait >> download

    SealmetricsExportOperator.partial(
        task_id="export",
        destination=f"{DAY_DIR}/{{{{ task.export_type }}}}.csv",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=3600,
        retries=2,
        map_index_template="{{ task.export_type }}",
    ).expand(export_type=["sources", "pages", "microconversions", "time_series"])
