"""Peer5 metrics every hour: per-minute traffic as Peer5's own CSV, and a per-browser/country split.

Trigger with config ``{"start": ..., "end": ...}`` to re-export a longer window in one run
(into ``peer5/reexport/<start>_<end>/``, leaving the hourly files alone): minute data is
fetched in chunks of at most 6 hours, as the API requires.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator

EXPORT_ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
# A run given start/end writes into a partition named after that window, never into its own hour's.
PARTITION = (
    "peer5/{% if params.start or params.end %}"
    "reexport/{{ params.start or (data_interval_start | ts) }}_{{ params.end or (data_interval_end | ts) }}"
    "{% else %}{{ data_interval_start.strftime('%Y-%m-%d/%H') }}{% endif %}"
)
WINDOW = {
    "start": "{{ params.start or data_interval_start }}",
    "end": "{{ params.end or data_interval_end }}",
}

with DAG(
    dag_id="peer5_hourly",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "peer5"],
    params={
        "start": Param(None, type=["null", "string"], description="Override the window start (ISO-8601)."),
        "end": Param(None, type=["null", "string"], description="Override the window end (ISO-8601)."),
    },
):
    Peer5ExportOperator(
        task_id="export_traffic_per_minute",
        destination=f"{EXPORT_ROOT}/{PARTITION}/traffic_1m.csv",
        metrics=["http", "p2p"],
        interval="1m",
        **WINDOW,
    )
    Peer5ExportOperator(
        task_id="export_playback_by_browser_country",
        destination=f"{EXPORT_ROOT}/{PARTITION}/playback_by_browser_country.jsonl",
        metrics=["sessions", "played", "rebuffered"],
        interval="5m",
        dimensions=["browser.name", "country.code"],
        **WINDOW,
    )
