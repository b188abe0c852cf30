"""Runs when browsee_sessions_daily's JSON-lines export lands, and checks what landed.

Scheduled on the export task's asset (``export_asset(dag_id, task_id)``), not on a clock:
each asset event's extra says which file landed (``uri``), how many sessions it holds
(``rows``) and which window it covers. The check re-counts the file's lines against
``rows``, so a file changed after the export fails this DAG instead of a later consumer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, ObjectStoragePath, task

from airflow_provider_analytics_export.assets import export_asset

BROWSEE_SESSIONS_JSONL = export_asset("browsee_sessions_daily", "export_sessions_jsonl")

with DAG(
    dag_id="browsee_sessions_landed",
    schedule=[BROWSEE_SESSIONS_JSONL],
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["analytics-export", "browsee", "assets"],
):

    @task
    def check_landed_sessions(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Re-count every file the triggering events announce; return what landed."""
        events = triggering_asset_events[BROWSEE_SESSIONS_JSONL]
        if not events:
            print("No asset event triggered this run (a manual run?): nothing to check.")
        landed = []
        for event in events:
            extra = event.extra
            with ObjectStoragePath(extra["uri"]).open("rb") as handle:
                lines = sum(1 for _ in handle)
            if lines != extra["rows"]:
                raise ValueError(f"{extra['uri']} holds {lines} rows, the export reported {extra['rows']}.")
            print(f"{extra['rows']} Browsee sessions landed in {extra['uri']}")
            landed.append({"uri": extra["uri"], "rows": extra["rows"], "window_start": extra["window_start"]})
        return landed

    check_landed_sessions()
