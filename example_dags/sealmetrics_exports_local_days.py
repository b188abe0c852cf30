"""Sealmetrics exports by the account's local day (an account outside UTC).

Sealmetrics' ``date_from``/``date_to`` are inclusive local days in the account's time zone.
Set that zone as the connection extra ``timezone`` (here connection ``sealmetrics_madrid`` with
``Europe/Madrid``; the sandbox provides it) and schedule in it,
``CronDataIntervalTimetable("@daily", timezone="Europe/Madrid")``: each run's interval is then
one whole local day (23 or 25 hours across a DST change) and exports exactly that day. A window
that is not whole local days (an hourly schedule, a UTC daily timetable for a Madrid account)
is refused before any request instead of exporting whole days again and again.

Trigger with config ``{"start": ..., "end": ...}`` (ISO-8601) to export other whole local days,
into ``sealmetrics_local/reexport/<start>_<end>/`` (the run's own day is left alone).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Param

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator

ZONE = "Europe/Madrid"
EXPORT_ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}"
LOCAL_DAY = f"{{{{ data_interval_start.in_timezone('{ZONE}').strftime('%Y-%m-%d') }}}}"
# A run given start/end writes into a partition named after that window, never into its own day's.
PARTITION = (
    "{% if params.start or params.end %}"
    "reexport/{{ params.start or (data_interval_start | ts) }}_{{ params.end or (data_interval_end | ts) }}"
    "{% else %}" + LOCAL_DAY + "{% endif %}"
)

with DAG(
    dag_id="sealmetrics_exports_local_days",
    schedule=CronDataIntervalTimetable("@daily", timezone=ZONE),
    start_date=dt.datetime(2024, 1, 1, tzinfo=ZoneInfo(ZONE)),
    catchup=False,
    tags=["analytics-export", "sealmetrics"],
    params={
        "start": Param(None, type=["null", "string"], description="Override the window start (ISO-8601)."),
        "end": Param(None, type=["null", "string"], description="Override the window end (ISO-8601)."),
    },
):
    SealmetricsExportOperator.partial(
        task_id="export",
        destination=f"{EXPORT_ROOT}/sealmetrics_local/{PARTITION}/{{{{ task.export_type }}}}.csv",
        start="{{ params.start or data_interval_start }}",
        end="{{ params.end or data_interval_end }}",
        deferrable=True,
        poll_interval=2,
        timeout=3600,
        map_index_template="{{ task.export_type }}",
        sealmetrics_conn_id="sealmetrics_madrid",
    ).expand(export_type=["sources", "microconversions"])
