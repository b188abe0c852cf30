"""Eight exports on two accounts at once, no pools: what the shared limit backend must hold.

A mapped OpenPanel export over four projects of one client (100 requests / 10 s per client,
small pages so the four together need several windows) and four Browsee exports of one
account (one open request). Run by a real scheduler with LocalExecutor (parallelism 8), once per
limit backend.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

ROOT = "{{ var.value.analytics_export_root }}"
OPENPANEL_PROJECTS = ("proj-web", "proj-app", "proj-shop", "proj-docs")
OPENPANEL_DAY = dt.date(2024, 4, 15)
BROWSEE_DAYS = tuple(dt.date(2024, 4, 15) + dt.timedelta(days=i) for i in range(4))
OPENPANEL_PAGE_SIZE = 20
BROWSEE_PAGE_SIZE = 50

#: DAG id -> the suffix of its connections' ids: the same DAG twice, one per limit backend, so one
#: Airflow deployment runs both (``shared_limits_redis`` on ``browsee_redis``/``openpanel_redis``).
DAGS = {"shared_limits": "default", "shared_limits_redis": "redis"}

for dag_id, conns in DAGS.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), max_active_tasks=16):
        OpenPanelEventsExportOperator.partial(
            task_id="openpanel_events",
            openpanel_conn_id=f"openpanel_{conns}",
            start=OPENPANEL_DAY.isoformat(),
            end=(OPENPANEL_DAY + dt.timedelta(days=1)).isoformat(),
            page_size=OPENPANEL_PAGE_SIZE,
            max_concurrency=4,
        ).expand_kwargs(
            [
                {"project_id": project, "destination": f"{ROOT}/shared/{dag_id}/openpanel/{project}.jsonl"}
                for project in OPENPANEL_PROJECTS
            ]
        )
        for day in BROWSEE_DAYS:
            BrowseeSessionsExportOperator(
                task_id=f"browsee_{day:%m%d}",
                browsee_conn_id=f"browsee_{conns}",
                start=day.isoformat(),
                end=(day + dt.timedelta(days=1)).isoformat(),
                page_size=BROWSEE_PAGE_SIZE,
                destination=f"{ROOT}/shared/{dag_id}/browsee/{day}.jsonl",
            )
