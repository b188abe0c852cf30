"""The combined daily sync: yesterday's data from all five APIs into one lake layout.

Every task exports the daily data interval [00:00, 24:00) UTC, so consecutive runs tile
time and a re-run of a day replaces that day's files. Files land under
``daily-sync/<api>/<data interval start>/``. In production, give each API a pool
(``browsee_api`` of size 1, ``openpanel_api`` sized to its 100 requests / 10 s) so the
API limits hold across workers too; see the README's "Scaling out".
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator

ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}/daily-sync"
DAY = "{{ data_interval_start | ds }}"

with DAG(
    dag_id="analytics_daily_sync",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    tags=["analytics-export"],
):
    BrowseeSessionsExportOperator(
        task_id="browsee_sessions", destination=f"{ROOT}/browsee/{DAY}/sessions.parquet"
    )
    OpenPanelEventsExportOperator(
        task_id="openpanel_events", destination=f"{ROOT}/openpanel/{DAY}/events.parquet"
    )
    BrazeSessionsExportOperator(task_id="braze_sessions", destination=f"{ROOT}/braze/{DAY}/sessions.jsonl")
    # 1d buckets: Peer5 serves daily data without a recency limit, so old days can be re-synced.
    Peer5ExportOperator(
        task_id="peer5_traffic",
        destination=f"{ROOT}/peer5/{DAY}/traffic.csv",
        metrics=["http", "p2p", "played", "rebuffered", "sessions"],
        interval="1d",
    )
    SealmetricsExportOperator(
        task_id="sealmetrics_pages",
        export_type="pages",
        destination=f"{ROOT}/sealmetrics/{DAY}/pages.csv",
        deferrable=True,
        poll_interval=5,
    )
