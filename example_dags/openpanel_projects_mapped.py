"""Many OpenPanel projects in one run: one mapped export task per connection.

The Variable ``openpanel_conn_ids`` (a JSON list, default ``["openpanel_default"]``) names one
Airflow connection per OpenPanel project/client; each gets its own mapped task instance and
its own file under ``openpanel/<data interval start>/<conn id>/events.jsonl``. Adding a project
is adding a connection and a list entry: no DAG change.

Rate limits when scaling out (OpenPanel allows 100 requests per 10 s per client):

- Within one worker process, the hooks share one process-wide limit per client (connection
  login + host), so concurrent tasks of the same client there stay under 100 / 10 s together.
- Across worker processes or machines (Celery, Kubernetes executors, or several LocalExecutor
  slots), set the connection extra ``limit_backend`` to a Redis (README, "Scaling out"): the
  limit is then one for every process, and no pool is needed for it.
- Without it nothing is shared across processes: each process paces only itself, and N
  processes on the same client can send N x 100 requests per 10 s. The API then answers 429;
  the hooks back off and retry, so nothing is lost, but the run slows down. Only Airflow can
  cap this then: every task here runs in the pool ``openpanel_api``. Size the pool so that
  (concurrent tasks per client) x (requests per second each task sends, at most 10) stays
  under the API limit, e.g. a pool of 1 slot per client id for full speed, or more slots with
  a lower ``max_concurrency``. Use a pool per API (``browsee_api``, ``sealmetrics_api``, ...)
  and ``max_active_tis_per_dag`` to cap one DAG. Create the pool first:
  ``airflow pools set openpanel_api 2 "OpenPanel export API"``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Variable, task

from airflow_provider_analytics_export.compat import CronDataIntervalTimetable
from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

POOL = "openpanel_api"

with DAG(
    dag_id="openpanel_projects_mapped",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "openpanel"],
):

    @task
    def project_exports(data_interval_start: dt.datetime | None = None) -> list[dict[str, Any]]:
        """One export per connection id, read at run time (not at parse time) from the Variable."""
        conn_ids = Variable.get("openpanel_conn_ids", default=["openpanel_default"], deserialize_json=True)
        root = Variable.get("analytics_export_root", default="file:///tmp/analytics-export")
        assert data_interval_start is not None
        day = data_interval_start.strftime("%Y-%m-%d")
        return [
            {"openpanel_conn_id": conn_id, "destination": f"{root}/openpanel/{day}/{conn_id}/events.jsonl"}
            for conn_id in conn_ids
        ]

    OpenPanelEventsExportOperator.partial(
        task_id="export_project_events",
        pool=POOL,
        pool_slots=1,
        max_concurrency=4,
    ).expand_kwargs(project_exports())
