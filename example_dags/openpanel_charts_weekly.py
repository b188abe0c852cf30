"""OpenPanel charts by week: daily unique users and revenue per country, with the previous week.

Weeks run Monday to Monday (UTC); with ``interval="day"`` each row is one (series, day).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.openpanel import OpenPanelChartsExportOperator

PARTITION = (
    "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
    "/openpanel-charts/{{ data_interval_start | ds }}"
)

with DAG(
    dag_id="openpanel_charts_weekly",
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "openpanel"],
):
    OpenPanelChartsExportOperator(
        task_id="export_country_chart",
        destination=f"{PARTITION}/users_revenue_by_country.csv",
        events=[
            {"name": "screen_view", "segment": "user"},
            {
                "name": "purchase",
                "segment": "property_sum",
                "property": "properties.total",
                "filters": [{"name": "properties.total", "operator": "isNotNull", "value": []}],
            },
        ],
        breakdowns=[{"name": "country"}],
        interval="day",
        previous=True,
    )
