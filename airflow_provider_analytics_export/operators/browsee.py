"""Export Browsee sessions of a time window to object storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_analytics_export.hooks.browsee import (
    BROWSEE_SESSIONS,
    ID_FIELD,
    SESSIONS_ENDPOINT,
    BrowseeHook,
    validate_session_args,
)
from airflow_provider_analytics_export.links import BrowseeSegmentsLink
from airflow_provider_analytics_export.operators.base import BaseExportOperator, RowPages
from airflow_provider_analytics_export.validation import is_templated


class BrowseeSessionsExportOperator(BaseExportOperator):
    """Write every Browsee session that started in [start, end) to ``destination``, exactly once.

    Pages of 100 sessions are streamed to the file one at a time; the row count is checked
    against ``exports.total``, and a mismatch fails the task without touching the
    destination. Browsee allows one open request per account: tasks on one account queue on
    one slot, machine-wide (README "Scaling out"); the next pages are read while this one is
    written. The result has ``pages``, the number of pages written.

    Takes :class:`~airflow_provider_analytics_export.operators.base.BaseExportOperator`'s
    ``destination`` (e.g. ``s3://bucket/browsee/{{ ds }}/sessions.parquet``), ``start``,
    ``end``, ``output_format`` and ``destination_conn_id``, and:

    :param browsee_conn_id: the Browsee connection (templated).
    :param segment_id: only sessions of this segment (templated).
    :param fields: ``options.select`` fields to export (templated); default: all.
    :param page_size: sessions per request, 1..100.
    """

    lineage_source = (BrowseeHook, SESSIONS_ENDPOINT)
    filter_fields = ("segment_id",)
    #: Listed by start while still running and growing (README "Late data").
    default_settle = dt.timedelta(hours=1)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "browsee_conn_id",
        "segment_id",
        "fields",
    )
    operator_extra_links = (BrowseeSegmentsLink(),)

    def __init__(
        self,
        *,
        browsee_conn_id: str = BrowseeHook.default_conn_name,
        segment_id: str | None = None,
        fields: Sequence[str] | None = None,
        page_size: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.browsee_conn_id = browsee_conn_id
        self.segment_id = segment_id
        self.fields = fields
        self.page_size = page_size
        validate_session_args(None if is_templated(fields) else fields, page_size)

    def export(self, context: Context, output_format: str) -> RowPages:
        window = self.export_window(context)
        select = validate_session_args(self.fields, self.page_size)
        hook = BrowseeHook(browsee_conn_id=self.browsee_conn_id)
        pages = hook.iter_session_pages(*window, self.segment_id or None, select, self.page_size)
        schema = BROWSEE_SESSIONS.select(select, keep=[ID_FIELD]) if select else BROWSEE_SESSIONS
        return RowPages(window=window, pages=pages, schema=schema)
