"""Export Braze's sessions-by-time series for a window to object storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context, ObjectStoragePath

from airflow_provider_analytics_export.files.schemas import BRAZE_SESSIONS
from airflow_provider_analytics_export.hooks.braze import DATA_SERIES_ENDPOINT, BrazeHook, validate_unit
from airflow_provider_analytics_export.links import BrazeDashboardLink
from airflow_provider_analytics_export.operators.base import AnalyticsExportOperator
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.windows import window_fields


class BrazeSessionsExportOperator(AnalyticsExportOperator):
    """Write one row ``{time, bucket_start, sessions, app_id, segment_id}`` per day or hour of [start, end).

    Buckets are the days or hours of the workspace time zone (connection extra
    ``timezone``, default UTC); ``bucket_start`` is each bucket's start in UTC, however
    Braze wrote ``time`` (a date, ``Z``, an offset or no offset). The window must cover
    whole buckets, checked before any request (not at DAG parse: the bucket edges depend
    on the connection's time zone): ``unit="day"`` on an hourly schedule would write a
    partial day that no later run corrects. Windows longer than 100 units are fetched as
    consecutive requests of at most 100 units (see :meth:`BrazeHook.iter_sessions_series`),
    so consecutive runs never write a bucket twice.

    :param task_id: the task id.
    :param destination: where to write (templated), e.g. ``s3://bucket/braze/{{ ds }}/sessions.csv``.
    :param braze_conn_id: the Braze connection (templated).
    :param start: window start, inclusive (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param unit: ``day`` or ``hour``, checked at DAG parse time.
    :param app_id: limit to one app (templated); written in every row.
    :param segment_id: limit to one analytics-enabled segment (templated); written in every row.
    :param output_format: ``jsonl``, ``csv`` or ``parquet``; default from the destination suffix.
    :param destination_conn_id: connection for the destination's object storage.
    """

    lineage_source = (BrazeHook, DATA_SERIES_ENDPOINT)
    template_fields: Sequence[str] = (
        *AnalyticsExportOperator.template_fields,
        "braze_conn_id",
        "app_id",
        "segment_id",
    )
    operator_extra_links = (BrazeDashboardLink(),)

    def __init__(
        self,
        *,
        task_id: str,
        destination: str | ObjectStoragePath,
        braze_conn_id: str = BrazeHook.default_conn_name,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        unit: str = "day",
        app_id: str | None = None,
        segment_id: str | None = None,
        output_format: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            task_id=task_id,
            destination=destination,
            start=start,
            end=end,
            output_format=output_format,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )
        validate_unit(unit)
        self.braze_conn_id = braze_conn_id
        self.unit = unit
        self.app_id = app_id
        self.segment_id = segment_id

    def execute(self, context: Context) -> dict[str, Any]:
        start, end = self.export_window(context)
        hook = BrazeHook(braze_conn_id=self.braze_conn_id)
        progress = ExportProgress(self.log, "Braze sessions")
        requests = 0
        with self.open_writer(BRAZE_SESSIONS) as writer:
            for points in hook.iter_sessions_series(start, end, self.unit, self.app_id, self.segment_id):
                requests += 1
                written = writer.write_rows(
                    {**point, "app_id": self.app_id, "segment_id": self.segment_id} for point in points
                )
                progress.update(written)
        progress.finish()
        return {
            **writer.summary(),
            "requests": requests,
            **window_fields(start, end),
        }
