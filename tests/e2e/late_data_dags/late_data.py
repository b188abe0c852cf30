"""DAGs of tests/e2e/test_late_data.py: every API in two formats, daily, with and without revisit.

``late_data_revisit`` re-exports the previous day on every run; ``late_data_plain`` is the same
schedule without it (the evidence of what a run at the window's end loses). Both wait 5 minutes
after the window's end (the test pins the sandbox clock there).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator

ROOT = "{{ var.value.get('analytics_export_root', 'file:///tmp/analytics-export') }}/late/{{ dag.dag_id }}"
SETTLE = dt.timedelta(minutes=5)
#: task id prefix -> (operator, its arguments, the two formats written)
EXPORTS: dict[str, tuple[Any, dict[str, Any], tuple[str, str]]] = {
    "browsee": (BrowseeSessionsExportOperator, {}, ("jsonl", "parquet")),
    "braze": (BrazeSessionsExportOperator, {"unit": "hour"}, ("jsonl", "parquet")),
    "openpanel": (OpenPanelEventsExportOperator, {}, ("jsonl", "parquet")),
    "peer5": (Peer5ExportOperator, {"metrics": ["http", "p2p"], "interval": "1h"}, ("jsonl", "parquet")),
    "sealmetrics": (
        SealmetricsExportOperator,
        {"export_type": "pages", "deferrable": True, "poll_interval": 1},
        ("csv", "json"),
    ),
}

#: The two DAGs by id (the test exports their windows once more for reference).
BY_ID: dict[str, DAG] = {}
for dag_id, revisit in (("late_data_revisit", 1), ("late_data_plain", 0)):
    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        tags=["analytics-export", "test"],
    ) as dag:
        BY_ID[dag_id] = dag
        for api, (operator, kwargs, formats) in EXPORTS.items():
            for fmt in formats:
                operator(
                    task_id=f"{api}_{fmt}",
                    destination=f"{ROOT}/{api}/{{{{ data_interval_start | ds }}}}/part.{fmt}",
                    settle=SETTLE,
                    revisit=revisit,
                    **kwargs,
                )

# A window ending seconds from now: the task defers until end + settle, then resumes and exports.
with DAG(
    "late_data_settle",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    params={"start": None, "end": None},
    tags=["analytics-export", "test"],
):
    BrowseeSessionsExportOperator(
        task_id="browsee_settled",
        destination=f"{ROOT}/browsee/{{{{ run_id | replace(':', '_') }}}}/part.jsonl",
        start="{{ params.start }}",
        end="{{ params.end }}",
        settle=dt.timedelta(seconds=3),
        deferrable=True,
    )
