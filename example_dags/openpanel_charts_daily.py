"""OpenPanel chart by day in the organization's time zone: page views per referrer.

OpenPanel cuts chart buckets at the organization's midnight, so the schedule runs on that
zone's days and the connection's ``timezone`` extra names the same zone. ``ORGANIZATION_ZONE``
below is UTC unless the environment of the DAG processor and workers sets
``OPENPANEL_ORGANIZATION_ZONE`` (e.g. ``America/New_York``; or edit the constant). Every row is
one (referrer, day) with the bucket's start in local time, e.g. ``2024-04-15T00:00:00-04:00``,
and the previous day for comparison. Direct traffic (no referrer) has an empty
``breakdown_referrer``. Files under ``openpanel-charts-daily/<day>/``.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.openpanel import OpenPanelChartsExportOperator

ORGANIZATION_ZONE = os.environ.get("OPENPANEL_ORGANIZATION_ZONE", "UTC")

with DAG(
    dag_id="openpanel_charts_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone=ORGANIZATION_ZONE),
    start_date=dt.datetime(2024, 1, 1, tzinfo=ZoneInfo(ORGANIZATION_ZONE)),
    catchup=False,
    tags=["analytics-export", "openpanel"],
):
    OpenPanelChartsExportOperator(
        task_id="export_views_by_referrer",
        destination=(
            "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
            "/openpanel-charts-daily/{{ data_interval_start | ds }}/views_by_referrer.csv"
        ),
        events=[{"name": "screen_view"}],
        breakdowns=[{"name": "referrer"}],
        interval="day",
        previous=True,
    )
