"""The bases of the export operators.

:class:`DestinationOperator` reports the one file a task wrote (asset event, lineage, closing log
line); :class:`BaseExportOperator` adds the five shared arguments, the window and the one write
loop, so an API's operator only says what to write (:class:`RowPages` or :class:`FileChunks`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import jinja2
from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from airflow_provider_analytics_export.assets import (
    PostExecuteHook,
    default_outlets,
    default_partial_outlets,
    wire_export_outlets,
)
from airflow_provider_analytics_export.files.destination import check_destination
from airflow_provider_analytics_export.files.schemas import Schema
from airflow_provider_analytics_export.files.writer import FORMATS, ExportWriter, resolve_format
from airflow_provider_analytics_export.lineage import ExportLineageMixin
from airflow_provider_analytics_export.operators.empty_export import nothing_matched_message
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.transport.retry import TRANSPORT_COUNTS
from airflow_provider_analytics_export.validation import is_templated
from airflow_provider_analytics_export.windows import resolve_window, to_datetime, window_fields

if TYPE_CHECKING:
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

#: [start, end) of one export.
Window = tuple[dt.datetime, dt.datetime]
_Item = TypeVar("_Item", bytes, Sequence[Mapping[str, Any]])

#: Template variables that exist only when the run has a logical date (and so a data interval).
INTERVAL_VARIABLES = (
    "data_interval_start",
    "data_interval_end",
    "logical_date",
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "prev_data_interval_start_success",
    "prev_data_interval_end_success",
)
NO_INTERVAL_HELP = (
    "This run has no data interval: it was triggered without a logical date (REST API or the UI's "
    "Trigger dialog with none), so templates cannot use data_interval_start, data_interval_end, ds "
    "or logical_date. Trigger it with a logical date (e.g. `airflow dags test DAG_ID 2024-04-15`, or "
    "a logical date in the Trigger dialog), or pass start=/end= and a destination that does not use them."
)


def display_uri(uri: str) -> str:
    """``uri`` without user info or query string: safe to log even if someone put secrets there."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def closing_line(result: Mapping[str, Any], seconds: float, requests: int, retries: int) -> str:
    """The line that ends an export's log: what was written where, for which window, at what cost."""
    if result.get("window_start"):
        window = f"[{result['window_start']}, {result.get('window_end')})"
    elif result.get("date_from"):
        window = f"{result['date_from']}..{result.get('date_to')} (dates, inclusive)"
    else:
        window = "n/a"
    return (
        f"Export written: {display_uri(str(result['uri']))} rows={result.get('rows')} "
        f"bytes={result.get('bytes')} format={result.get('format')} window={window} "
        f"wall_time={seconds:.1f}s requests={requests} retries={retries}"
    )


def _with_closing_line(post_execute: PostExecuteHook) -> PostExecuteHook:
    """A ``post_execute`` hook (the only one Airflow hands the result to) that logs :func:`closing_line`."""

    def hook(context: Context, result: Any) -> None:
        task = context["task"]
        if isinstance(result, Mapping) and result.get("uri") and isinstance(task, DestinationOperator):
            task.log_closing_line(result)
        post_execute(context, result)

    return hook


class DestinationOperator(ExportLineageMixin, BaseOperator):
    """A task that writes one file to ``destination`` and reports what landed there.

    The task updates :func:`~airflow_provider_analytics_export.assets.export_asset` for its
    DAG and task id (mapped tasks too, one event per mapped instance) unless ``outlets`` are
    given; the event's extra carries the rendered ``uri``, ``rows``, ``bytes``, ``format``
    and window of the summary ``execute`` returns (see :mod:`airflow_provider_analytics_export.assets`).
    Subclasses set ``destination`` and ``destination_conn_id``, and name in ``filter_fields`` the
    arguments that narrow what the API returns (an export that wrote no rows warns naming those set).
    """

    filter_fields: ClassVar[Sequence[str]] = ()

    def __init__(self, **kwargs: Any) -> None:
        outlets_defaulted = wire_export_outlets(kwargs)
        kwargs["post_execute"] = _with_closing_line(kwargs["post_execute"])
        super().__init__(**kwargs)
        if outlets_defaulted:
            self.outlets = default_outlets(self)
        self._started: tuple[float, int, int] | None = None

    def pre_execute(self, context: Any) -> None:
        """Note the time and the transport counters, for the closing log line; check the destination."""
        self._started = (time.monotonic(), *TRANSPORT_COUNTS.snapshot())
        check_destination(self.destination, self.destination_conn_id)
        super().pre_execute(context)

    def log_closing_line(self, result: Mapping[str, Any]) -> None:
        """Log :func:`closing_line` for this attempt (a resumed deferral counts from its resumption)."""
        started, requests, retries = self._started or (time.monotonic(), *TRANSPORT_COUNTS.snapshot())
        now_requests, now_retries = TRANSPORT_COUNTS.snapshot()
        seconds = time.monotonic() - started
        self.log.info(closing_line(result, seconds, now_requests - requests, now_retries - retries))
        if warning := nothing_matched_message(self, self.filter_fields, result):
            self.log.warning(warning)

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render like Airflow, but a run without data interval fails with :data:`NO_INTERVAL_HELP`.

        Without a logical date Airflow leaves ``data_interval_start`` and friends out of the
        context, and the first template using one would fail with a bare Jinja
        ``'data_interval_start' is undefined``.
        """
        try:
            return super().render_template(content, context, jinja_env, seen_oids)
        except jinja2.UndefinedError as exc:
            about_interval = any(f"'{name}'" in str(exc) for name in INTERVAL_VARIABLES)
            if not about_interval or context.get("data_interval_start") is not None:
                raise
            # from None: this message, not Jinja's traceback, is what the task log shows.
            raise ValueError(f"{NO_INTERVAL_HELP} (Jinja: {exc}.)") from None

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Like ``BaseOperator.partial``, with the default export asset declared for the mapped task."""
        partial = super().partial(**kwargs)
        if "outlets" not in kwargs:
            default_partial_outlets(partial)
        return partial


@dataclass(frozen=True, kw_only=True)
class ExportSource:
    """What a :class:`BaseExportOperator` subclass exports in one execute; the base writes it.

    :param window: the [start, end) exported (its ``window_start``/``window_end`` go into the
        result), or None for an export without one.
    :param fields: result fields the subclass adds to the writer's summary.
    :param counted_as: the result key of the number of pages (or file chunks) written.
    :param progress: label of the progress lines the base logs, or None where the hook's pager
        already logs them.
    """

    window: Window | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    counted_as: str = "pages"
    progress: str | None = None


@dataclass(frozen=True, kw_only=True)
class RowPages(ExportSource):
    """Rows, one sequence per API response; csv/parquet have the columns of ``schema``."""

    pages: Iterable[Sequence[Mapping[str, Any]]]
    schema: Schema | None = None


@dataclass(frozen=True, kw_only=True)
class FileChunks(ExportSource):
    """A file the API encoded itself, one bytes chunk per response, copied as sent and its records counted.

    :param record_format: how the records are read for the count: ``csv``, ``json`` or ``ndjson``.
    """

    chunks: Iterable[bytes]
    record_format: str


class BaseExportOperator(DestinationOperator):
    """Base of the export operators: one window of an API into one file, written atomically.

    A subclass takes only its own arguments (the five below come through ``**kwargs``) and
    says in :meth:`export` what to write; ``execute`` resolves the format once, opens one
    :class:`ExportWriter`, writes every page (or copies the API's file), and returns the
    writer's summary with the subclass's fields and the window. Values that are not templated
    are validated at DAG parse time; templated ones after rendering, before any request.

    Like every :class:`DestinationOperator`, the task updates an asset with what landed.

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
        self.validate_static()

    def validate_static(self) -> None:
        """Check the format and the bounds now if nothing about them is templated."""
        if not is_templated(self.destination) and not is_templated(self.output_format):
            resolve_format(self.destination, self.output_format, self.allowed_formats)
        self.static_window()

    def static_window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(start, end) where known at DAG parse (given and not templated), else None, for early checks."""

        def known(value: Any, name: str) -> dt.datetime | None:
            return to_datetime(value, name) if value not in (None, "") and not is_templated(value) else None

        return known(self.start, "start"), known(self.end, "end")

    def export_window(self, context: Context) -> Window:
        """[start, end): the arguments, else the run's data interval (an empty one is an error)."""
        return resolve_window(self.start, self.end, context)

    def export(self, context: Context, output_format: str) -> RowPages | FileChunks:
        """What to write for the rendered arguments: :class:`RowPages` or :class:`FileChunks`.

        Called once per execute, before the writer opens: raise here for anything invalid,
        so nothing is requested or written. Parse the window once, with :meth:`export_window`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement export()")

    def execute(self, context: Context) -> dict[str, Any]:
        """Write what :meth:`export` describes into ``destination``; the summary is the result."""
        output_format = resolve_format(self.destination, self.output_format, self.allowed_formats)
        source = self.export(context, output_format)
        schema = source.schema if isinstance(source, RowPages) else None
        tally = _Tally(self.log, source.progress, "rows" if isinstance(source, RowPages) else "bytes")
        with ExportWriter(self.destination, output_format, self.destination_conn_id, schema) as writer:
            if isinstance(source, RowPages):
                for page in tally.each(source.pages, len):
                    writer.write_rows(page)
            else:
                writer.copy(tally.each(source.chunks, len), source.record_format)
        tally.finish()
        return {
            **writer.summary(),
            source.counted_as: tally.pages,
            **source.fields,
            **(window_fields(*source.window) if source.window else {}),
        }


class _Tally:
    """Counts the pages (or chunks) on their way to the writer; logs progress when given a label."""

    def __init__(self, log: Any, label: str | None, unit: str) -> None:
        self.pages = 0
        self.progress = ExportProgress(log, label, unit=unit) if label else None

    def each(self, items: Iterable[_Item], size: Callable[[_Item], int]) -> Iterator[_Item]:
        for item in items:
            self.pages += 1
            if self.progress:
                self.progress.update(size(item))
            yield item

    def finish(self) -> None:
        if self.progress:
            self.progress.finish()
