"""Export Braze's sessions-by-time series for a window to object storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_analytics_export.hooks.braze import (
    BRAZE_SESSIONS,
    DATA_SERIES_ENDPOINT,
    BrazeHook,
    validate_unit,
)
from airflow_provider_analytics_export.links import BrazeDashboardLink
from airflow_provider_analytics_export.operators.base import BaseExportOperator, RowPages


class BrazeSessionsExportOperator(BaseExportOperator):
    """Write one row ``{time, bucket_start, sessions, app_id, segment_id}`` per day or hour of [start, end).

    Buckets are the days or hours of the workspace time zone (connection extra
    ``timezone``, default UTC); ``bucket_start`` is each bucket's start in UTC, however
    Braze wrote ``time`` (a date, ``Z``, an offset or no offset). The window must cover
    whole buckets, checked before any request (not at DAG parse: the bucket edges depend
    on the connection's time zone): ``unit="day"`` on an hourly schedule would write a
    partial day that no later run corrects. Windows longer than 100 units are fetched as
    consecutive requests of at most 100 units (see :meth:`BrazeHook.iter_sessions_series`),
    so consecutive runs never write a bucket twice. The result has ``requests``, the
    number of series requests written.

    Takes :class:`~airflow_provider_analytics_export.operators.base.BaseExportOperator`'s
    ``destination`` (e.g. ``s3://bucket/braze/{{ ds }}/sessions.csv``), ``start``, ``end``,
    ``output_format`` and ``destination_conn_id``, and:

    :param braze_conn_id: the Braze connection (templated).
    :param unit: ``day`` or ``hour``, checked at DAG parse time.
    :param app_id: limit to one app (templated); written in every row.
    :param segment_id: limit to one analytics-enabled segment (templated); written in every row.
    """

    lineage_source = (BrazeHook, DATA_SERIES_ENDPOINT)
    filter_fields = ("app_id", "segment_id")
    #: Sessions stay open 30 min, then a pipeline counts them (README "Late data").
    default_settle = dt.timedelta(hours=1)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "braze_conn_id",
        "app_id",
        "segment_id",
    )
    operator_extra_links = (BrazeDashboardLink(),)

    def __init__(
        self,
        *,
        braze_conn_id: str = BrazeHook.default_conn_name,
        unit: str = "day",
        app_id: str | None = None,
        segment_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        validate_unit(unit)
        self.braze_conn_id = braze_conn_id
        self.unit = unit
        self.app_id = app_id
        self.segment_id = segment_id

    def export(self, context: Context, output_format: str) -> RowPages:
        window = self.export_window(context)
        hook = BrazeHook(braze_conn_id=self.braze_conn_id)
        series = hook.iter_sessions_series(*window, self.unit, self.app_id, self.segment_id)
        tags = {"app_id": self.app_id, "segment_id": self.segment_id}
        pages = ([{**point, **tags} for point in points] for points in series)
        return RowPages(
            window=window,
            pages=pages,
            schema=BRAZE_SESSIONS,
            counted_as="requests",
            progress="Braze sessions",
        )
