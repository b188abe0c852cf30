"""Export Peer5 metrics for a window to object storage, chunked to fit the API's limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context, ObjectStoragePath

from airflow_provider_analytics_export.files.schemas import PEER5_EXPORT
from airflow_provider_analytics_export.files.writer import ExportWriter, resolve_format
from airflow_provider_analytics_export.hooks.peer5 import (
    EXPORT_ENDPOINT,
    Peer5Hook,
    check_window,
    validate_query,
)
from airflow_provider_analytics_export.operators.base import AnalyticsExportOperator
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.validation import is_templated
from airflow_provider_analytics_export.windows import window_fields


class Peer5ExportOperator(AnalyticsExportOperator):
    """Write Peer5 metrics per bucket of [start, end): ``timestamp`` (epoch ms), dimensions, metrics.

    The window must cover whole buckets of ``interval`` (checked at DAG parse when
    ``start``/``end`` are static, else before any request): a bucket coarser than the run,
    e.g. ``1d`` on an hourly schedule, would be written partial by the first run and never
    corrected by the later ones. Windows longer than the interval's documented query range
    are split into consecutive chunks; a window older than the interval's recency limit
    fails before any request, naming the coarser intervals that would work.

    A ``csv`` destination receives Peer5's own CSV bytes as they arrive (one header kept,
    each record byte for byte); records are parsed only to drop the bucket starting at the
    chunk's ``to``, which Peer5 may or may not include. ``jsonl``/``parquet`` rows have the
    declared columns ``timestamp``, the dimensions and the metrics; a metric a row lacks is
    null (see :class:`~airflow_provider_analytics_export.files.writer.ExportWriter`).

    :param task_id: the task id.
    :param destination: where to write (templated), e.g. ``s3://bucket/peer5/{{ ds }}/{{ ts_nodash }}.csv``.
    :param metrics: metrics to export: ``http``, ``p2p``, ``played``, ``rebuffered``, ``sessions``.
    :param interval: bucket size: ``1m 5m 10m 30m 1h 3h 12h 1d 7d 14d``.
    :param peer5_conn_id: the Peer5 connection (templated).
    :param start: window start, inclusive (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param filters: field -> value or list of values to keep (templated).
    :param dimensions: up to two fields to split by, one row per bucket and value combination (templated).
    :param output_format: ``jsonl``, ``csv`` or ``parquet``; default from the destination suffix.
    :param destination_conn_id: connection for the destination's object storage.
    """

    lineage_source = (Peer5Hook, EXPORT_ENDPOINT)
    template_fields: Sequence[str] = (
        *AnalyticsExportOperator.template_fields,
        "peer5_conn_id",
        "filters",
        "dimensions",
    )
    template_fields_renderers = {"filters": "json", "dimensions": "json"}

    def __init__(
        self,
        *,
        task_id: str,
        destination: str | ObjectStoragePath,
        metrics: Sequence[str],
        interval: str = "1h",
        peer5_conn_id: str = Peer5Hook.default_conn_name,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        filters: Mapping[str, str | Sequence[str]] | str | None = None,
        dimensions: Sequence[str] | str | None = None,
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
        self.metrics = list(metrics) if not isinstance(metrics, str) else metrics
        self.interval = interval
        self.peer5_conn_id = peer5_conn_id
        self.filters = filters
        self.dimensions = dimensions
        if not is_templated(filters) and not is_templated(dimensions):
            self.validate_query()
        check_window(*self.static_window(), interval)

    def validate_query(self) -> None:
        """Reject unknown metrics, filter/dimension keys and too many dimensions (again after rendering)."""
        validate_query(self.interval, self.metrics, self.filters, self.dimensions)  # type: ignore[arg-type]

    def execute(self, context: Context) -> dict[str, Any]:
        self.validate_query()
        start, end = self.export_window(context)
        check_window(start, end, self.interval)
        fmt = resolve_format(self.destination, self.output_format, self.allowed_formats)
        passthrough = fmt == "csv"
        hook = Peer5Hook(peer5_conn_id=self.peer5_conn_id)
        schema = PEER5_EXPORT.select([*(self.dimensions or []), *self.metrics], keep=["timestamp"])
        with self.open_writer(None if passthrough else schema) as writer:
            if passthrough:
                chunks = self._write_csv(hook, writer, start, end)
            else:
                chunks = self._write_rows(hook, writer, start, end)
        return {
            **writer.summary(),
            "chunks": chunks,
            "passthrough": passthrough,
            **window_fields(start, end),
        }

    def _query(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "metrics": self.metrics,
            "filters": self.filters or None,
            "dimensions": self.dimensions or None,
        }

    def _write_rows(self, hook: Peer5Hook, writer: ExportWriter, start: dt.datetime, end: dt.datetime) -> int:
        progress = ExportProgress(self.log, "Peer5 rows")
        for rows in hook.export(start, end, **self._query(), output="json"):
            progress.update(writer.write_rows(rows))
        progress.finish()
        return progress.pages

    def _write_csv(self, hook: Peer5Hook, writer: ExportWriter, start: dt.datetime, end: dt.datetime) -> int:
        progress = ExportProgress(self.log, "Peer5 CSV", unit="bytes")
        lines = 0
        for data in hook.export(start, end, **self._query(), output="csv"):
            writer.write_bytes(data)
            lines += data.count(b"\n")
            progress.update(len(data))
        progress.finish()
        writer.rows = max(0, lines - 1)  # the one header line is not a row
        return progress.pages
