"""Export Peer5 metrics for a window to object storage, chunked to fit the API's limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_analytics_export.hooks.peer5 import (
    EXPORT_ENDPOINT,
    PEER5_EXPORT,
    Peer5Hook,
    Peer5Query,
    check_window,
)
from airflow_provider_analytics_export.operators.base import BaseExportOperator, FileChunks, RowPages
from airflow_provider_analytics_export.validation import is_templated


class Peer5ExportOperator(BaseExportOperator):
    """Write Peer5 metrics per bucket of [start, end): ``timestamp`` (epoch ms), dimensions, metrics.

    The window must cover whole buckets of ``interval`` (checked at DAG parse when
    ``start``/``end`` are static, else before any request): a bucket coarser than the run,
    e.g. ``1d`` on an hourly schedule, would be written partial by the first run and never
    corrected by the later ones. Windows longer than the interval's documented query range
    are split into consecutive chunks (the result's ``chunks``); a window older than the
    interval's recency limit fails before any request, naming the coarser intervals that would work.

    A ``csv`` destination receives Peer5's own CSV bytes as they arrive (one header kept,
    each record byte for byte; the result's ``passthrough`` is true); records are parsed only
    to drop the bucket starting at the chunk's ``to``, which Peer5 may or may not include.
    ``jsonl``/``parquet`` rows have the declared columns ``timestamp``, the dimensions and the
    metrics; a metric a row lacks is null (see
    :class:`~airflow_provider_analytics_export.files.writer.ExportWriter`).

    Takes :class:`~airflow_provider_analytics_export.operators.base.BaseExportOperator`'s
    ``destination`` (e.g. ``s3://bucket/peer5/{{ ds }}/{{ ts_nodash }}.csv``), ``start``,
    ``end``, ``output_format`` and ``destination_conn_id``, and:

    :param metrics: metrics to export: ``http``, ``p2p``, ``played``, ``rebuffered``, ``sessions``.
    :param interval: bucket size: ``1m 5m 10m 30m 1h 3h 12h 1d 7d 14d``.
    :param peer5_conn_id: the Peer5 connection (templated).
    :param filters: field -> value or list of values to keep (templated).
    :param dimensions: up to two fields to split by, one row per bucket and value combination (templated).
    """

    lineage_source = (Peer5Hook, EXPORT_ENDPOINT)
    filter_fields = ("filters",)
    #: Vendor-computed aggregates, settling undocumented (README "Late data").
    default_settle = dt.timedelta(minutes=30)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "peer5_conn_id",
        "filters",
        "dimensions",
    )
    template_fields_renderers = {"filters": "json", "dimensions": "json"}

    def __init__(
        self,
        *,
        metrics: Sequence[str],
        interval: str = "1h",
        peer5_conn_id: str = Peer5Hook.default_conn_name,
        filters: Mapping[str, str | Sequence[str]] | str | None = None,
        dimensions: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = list(metrics) if not isinstance(metrics, str) else metrics
        self.interval = interval
        self.peer5_conn_id = peer5_conn_id
        self.filters = filters
        self.dimensions = dimensions
        if not is_templated(filters) and not is_templated(dimensions):
            self.query()
        check_window(*self.static_window(), interval)

    def query(self) -> Peer5Query:
        """The rendered query, checked against the documented values (raises ValueError)."""
        return Peer5Query(self.interval, self.metrics, self.filters or None, self.dimensions or None)  # type: ignore[arg-type]

    def export(self, context: Context, output_format: str) -> RowPages | FileChunks:
        """Rows, or for csv Peer5's own CSV; the rendered query and the window are checked first."""
        query = self.query()
        window = self.export_window(context)
        hook = Peer5Hook(peer5_conn_id=self.peer5_conn_id)
        passthrough = output_format == "csv"
        common: dict[str, Any] = {
            "window": window,
            "fields": {"passthrough": passthrough},
            "counted_as": "chunks",
        }
        if passthrough:
            chunks = hook.export_csv(*window, query)
            return FileChunks(chunks=chunks, record_format="csv", progress="Peer5 CSV", **common)
        pages = hook.export_rows(*window, query)
        schema = PEER5_EXPORT.select([*(self.dimensions or []), *self.metrics], keep=["timestamp"])
        return RowPages(pages=pages, schema=schema, progress="Peer5 rows", **common)
