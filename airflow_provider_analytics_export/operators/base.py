"""What every export operator shares: the window, the destination and the atomic writer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from airflow_provider_analytics_export.assets import (
    default_outlets,
    default_partial_outlets,
    wire_export_outlets,
)
from airflow_provider_analytics_export.lineage import ExportLineageMixin
from airflow_provider_analytics_export.validation import is_templated
from airflow_provider_analytics_export.windows import resolve_window, to_datetime
from airflow_provider_analytics_export.writer import FORMATS, ExportWriter, resolve_format

if TYPE_CHECKING:
    from airflow.sdk.definitions.mappedoperator import OperatorPartial


class BaseExportOperator(ExportLineageMixin, BaseOperator):
    """A task that writes one export to ``destination``: it updates an asset and reports lineage.

    The task updates :func:`~airflow_provider_analytics_export.assets.export_asset` for its
    DAG and task id (mapped tasks too, one event per mapped instance) unless ``outlets`` are
    given; the event's extra carries the rendered ``uri``, ``rows``, ``bytes``, ``format``
    and window of the summary ``execute`` returns (see :mod:`airflow_provider_analytics_export.assets`).
    Subclasses set ``destination`` and ``destination_conn_id``.
    """

    def __init__(self, **kwargs: Any) -> None:
        outlets_defaulted = wire_export_outlets(kwargs)
        super().__init__(**kwargs)
        if outlets_defaulted:
            self.outlets = default_outlets(self)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Like ``BaseOperator.partial``, with the default export asset declared for the mapped task."""
        partial = super().partial(**kwargs)
        if "outlets" not in kwargs:
            default_partial_outlets(partial)
        return partial


class AnalyticsExportOperator(BaseExportOperator):
    """Base of the export operators: resolves [start, end) and writes through :class:`ExportWriter`.

    Values that are not templated are validated here, at DAG parse time; templated ones
    are validated again after rendering, before any request is sent.

    Like every :class:`BaseExportOperator`, the task updates an asset with what landed.

    :param destination: where to write, as an ObjectStoragePath URL (templated), e.g.
        ``s3://bucket/browsee/{{ ds }}/sessions.parquet``.
    :param start: window start (inclusive, templated); default: the run's data interval start.
    :param end: window end (exclusive, templated); default: the run's data interval end.
    :param output_format: ``jsonl``, ``csv`` or ``parquet``; default: the destination's suffix.
    :param destination_conn_id: Airflow connection for the destination's object storage.
    """

    template_fields: Sequence[str] = ("destination", "destination_conn_id", "start", "end", "output_format")
    allowed_formats: ClassVar[Sequence[str]] = FORMATS
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        output_format: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = str(destination)
        self.start = start
        self.end = end
        self.output_format = output_format
        self.destination_conn_id = destination_conn_id
        self.validate_output()

    def validate_output(self) -> None:
        """Check the format now if nothing about it is templated."""
        if not is_templated(self.destination) and not is_templated(self.output_format):
            resolve_format(self.destination, self.output_format, self.allowed_formats)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value not in (None, "") and not is_templated(value):
                to_datetime(value, name)

    def export_window(self, context: Context) -> tuple[dt.datetime, dt.datetime]:
        """[start, end): the arguments, else the run's data interval (an empty one is an error)."""
        return resolve_window(self.start, self.end, context)

    def open_writer(self, columns: Sequence[str] | None = None) -> ExportWriter:
        """An atomic writer for the rendered destination and format."""
        fmt = resolve_format(self.destination, self.output_format, self.allowed_formats)
        return ExportWriter(self.destination, fmt, self.destination_conn_id, columns)
