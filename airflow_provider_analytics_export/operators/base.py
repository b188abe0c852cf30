"""The bases of the export operators.

:class:`DestinationOperator` reports the one file a task wrote (asset event, lineage, closing log
line); :class:`BaseExportOperator` adds the five shared arguments, the window and the one write
loop, so an API's operator only says what to write (:class:`RowPages` or :class:`FileChunks`).
It also waits for the window to settle and re-exports earlier windows (README "Late data").
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import jinja2
from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from airflow_provider_analytics_export.assets import (
    PostExecuteHook,
    default_outlets,
    default_partial_outlets,
    wire_export_outlets,
)
from airflow_provider_analytics_export.compat import conf
from airflow_provider_analytics_export.files.destination import check_destination, display_uri
from airflow_provider_analytics_export.files.schemas import Schema
from airflow_provider_analytics_export.files.writer import FORMATS, ExportWriter, resolve_format
from airflow_provider_analytics_export.late_data import (
    Correction,
    RevisitError,
    describe_corrections,
    revisit_windows,
    validate_revisit,
    validate_settle,
    window_context,
)
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


def closing_line(result: Mapping[str, Any], seconds: float, requests: int, retries: int) -> str:
    """The line that ends an export's log: what was written where, for which window, at what cost.

    With revisits, also how many earlier partitions were exported again, how many replaced, and
    each replaced one's records before and after.
    """
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
    ) + (describe_corrections(result["revisits"]) if result.get("revisits") is not None else "")


def _with_closing_line(post_execute: PostExecuteHook) -> PostExecuteHook:
    """A ``post_execute`` hook (the only one Airflow hands the result to) that logs :func:`closing_line`.

    An export's revisits run here first, after the run's own window however it finished (in
    ``execute`` or resumed from a deferral), so their record joins the result before XCom.
    """

    def hook(context: Context, result: Any) -> None:
        task = context["task"]
        if isinstance(result, dict) and isinstance(task, BaseExportOperator):
            task.revisit_partitions(context, result)
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
    :param settle: how long after the window's end the export may start (data still arriving),
        as a timedelta or seconds; default :attr:`default_settle` of the API (README "Late data").
        Until then the task waits: deferred on the triggerer when ``deferrable``, else asleep.
    :param revisit: also re-export, after this window, the N previous windows of the DAG's
        schedule (an int), or every previous window starting within a horizon (a timedelta),
        each into its own partition (``destination`` rendered for that window), replaced only
        when its content changed. The result's ``revisits`` lists what each one held before and after.
    :param revisit_in_backfill: revisit in backfill runs too; by default a backfill run skips
        its revisits, since the backfill's own runs export those windows (settled by then).
    :param deferrable: wait for ``settle`` on the triggerer, freeing the worker slot; default
        ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("destination", "destination_conn_id", "start", "end", "output_format")
    allowed_formats: ClassVar[Sequence[str]] = FORMATS
    #: How long after a window's end this API's data stops changing enough to export it;
    #: each API's operator sets its own (README "Late data"). Zero only for a source known final.
    default_settle: ClassVar[dt.timedelta] = dt.timedelta(0)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        output_format: str | None = None,
        destination_conn_id: str | None = None,
        settle: dt.timedelta | float | None = None,
        revisit: int | dt.timedelta = 0,
        revisit_in_backfill: bool = False,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = str(destination)
        #: The destination as written in the DAG, rendered again for each revisited window.
        self.destination_template = self.destination
        self.start = start
        self.end = end
        self.output_format = output_format
        self.destination_conn_id = destination_conn_id
        given_settle = validate_settle(settle)
        self.settle = self.default_settle if given_settle is None else given_settle
        self.revisit = validate_revisit(revisit)
        self.revisit_in_backfill = bool(revisit_in_backfill)
        self.deferrable = (
            conf.getboolean("operators", "default_deferrable", fallback=False)
            if deferrable is None
            else deferrable
        )
        self.validate_static()

    def validate_static(self) -> None:
        """Check the format and the bounds now if nothing about them is templated."""
        if not is_templated(self.destination) and not is_templated(self.output_format):
            resolve_format(self.destination, self.output_format, self.allowed_formats)
        if self.revisit and not is_templated(self.destination):
            raise ValueError(
                f"revisit={self.revisit!r} needs a destination that depends on the window, e.g. "
                f"'.../{{{{ ds }}}}/file.jsonl': destination={display_uri(self.destination)!r} would "
                "make every revisited window overwrite the same file."
            )
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

    def pre_execute(self, context: Any) -> None:
        """Wait until the window has settled, then let the export (``execute``) start."""
        super().pre_execute(context)
        self.wait_to_settle(context)

    def wait_to_settle(self, context: Context) -> None:
        """Return once ``end + settle`` has passed: sleep here, or defer to a DateTimeTrigger.

        A deferred task resumes in :meth:`execute_settled`; Airflow calls ``pre_execute`` again
        first, which then finds the window settled.
        """
        try:
            _, end = self.export_window(context)
        except (TypeError, ValueError):
            return  # no window: execute() fails with the reason, before any request
        ready = end + self.settle
        wait = (ready - dt.datetime.now(dt.timezone.utc)).total_seconds()
        if wait <= 0:
            return
        where = "on the triggerer (deferred)" if self.deferrable else "in this worker"
        self.log.info(
            "Window ends %s; its data keeps arriving for settle=%s, so the export starts at %s: "
            "waiting %.0f s %s.",
            end.isoformat(),
            self.settle,
            ready.isoformat(),
            wait,
            where,
        )
        if self.deferrable:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.defer(trigger=DateTimeTrigger(moment=ready), method_name="execute_settled")
        time.sleep(wait)

    def execute_settled(self, context: Context, event: Any = None) -> Any:
        """Resume after the settle deferral: the export itself (``execute`` of the operator)."""
        return self.execute(context)

    def revisit_partitions(self, context: Context, result: dict[str, Any]) -> None:
        """Export the :attr:`revisit` previous windows again, each into its own partition.

        Adds ``result["revisits"]``: one :class:`~airflow_provider_analytics_export.late_data.Correction`
        per window, newest first. Every window is tried, each written atomically and replaced only
        if it changed; if any failed, :class:`RevisitError` names them after the others finished.
        A backfill run skips its revisits unless ``revisit_in_backfill`` (its own runs export them).
        """
        if not self.revisit:
            return
        if _is_backfill(context) and not self.revisit_in_backfill:
            self.log.info(
                "Backfill run: not revisiting %s earlier windows (the backfill exports them itself; "
                "revisit_in_backfill=True would add those exports to every run).",
                self.revisit,
            )
            result["revisits"] = []
            return
        window = self.export_window(context)
        interval = context.get("data_interval_start"), context.get("data_interval_end")
        on_schedule = tuple(to_datetime(m) if m else None for m in interval) == window
        dag = context.get("dag")
        timetable = getattr(dag, "timetable", None) if on_schedule else None
        plans = [
            (w, self.destination_for(w, context)) for w in revisit_windows(window, self.revisit, timetable)
        ]
        self._check_distinct(str(result.get("uri") or self.destination), plans)
        corrections: list[dict[str, Any]] = []
        failed: list[str] = []
        for revisited, destination in plans:
            start, end = (moment.isoformat() for moment in revisited)
            try:
                summary = self.for_window(revisited, destination).execute(window_context(context, revisited))
            except Exception as exc:
                self.log.error(
                    "Revisit of [%s, %s) into %s failed: %s", start, end, display_uri(destination), exc
                )
                failed.append(f"[{start}, {end}): {type(exc).__name__}: {exc}")
                continue
            record = Correction(
                window_start=start,
                window_end=end,
                uri=str(summary["uri"]),
                rows_before=summary.get("rows_before"),
                rows_after=int(summary["rows"]),
                replaced=bool(summary.get("replaced", True)),
            )
            corrections.append(record.as_dict())
        result["revisits"] = corrections
        if failed:
            raise RevisitError(
                f"{len(failed)} of {len(plans)} revisited windows failed (the others are committed, "
                "the failed ones' partitions left as they were): " + "; ".join(failed)
            )

    def destination_for(self, window: Window, context: Context) -> str:
        """``destination`` as written in the DAG, rendered with ``window`` as the data interval."""
        rendered = self.render_template(self.destination_template, window_context(context, window))
        return str(rendered)

    def for_window(self, window: Window, destination: str) -> BaseExportOperator:
        """A copy of this task that exports ``window`` into ``destination``, without waiting or deferring.

        It waits no settle (earlier windows settled before this one) and runs any job in this
        worker, outside the task's durable job store (which holds the run's own window's job).
        """
        task = copy.copy(self)
        task.destination = destination
        task.start, task.end = window
        task.deferrable = False
        task.revisit = 0
        if hasattr(task, "durable"):
            task.durable = False
        return task

    @staticmethod
    def _check_distinct(own: str, plans: list[tuple[Window, str]]) -> None:
        """Refuse revisits whose partitions coincide: they would overwrite each other, before any request."""
        seen: dict[str, str] = {display_uri(own): "this run's window"}
        for (start, _), destination in plans:
            key = display_uri(destination)
            if key in seen:
                raise ValueError(
                    f"The revisited window starting {start.isoformat()} renders destination "
                    f"{key!r}, the same as {seen[key]}: make destination depend on the window "
                    "(e.g. {{ ds }}, or {{ ts_nodash }} for hourly runs)."
                )
            seen[key] = f"the window starting {start.isoformat()}"

    def execute(self, context: Context) -> dict[str, Any]:
        """Write what :meth:`export` describes into ``destination``; the summary is the result."""
        output_format = resolve_format(self.destination, self.output_format, self.allowed_formats)
        source = self.export(context, output_format)
        schema = source.schema if isinstance(source, RowPages) else None
        tally = _Tally(self.log, source.progress, "rows" if isinstance(source, RowPages) else "bytes")
        items = source.pages if isinstance(source, RowPages) else source.chunks
        # A write that fails leaves the listing mid-way; its traceback would keep it (a read-ahead
        # thread, an open response) alive until garbage collection: closed here instead.
        with (
            closing_if_possible(items),
            ExportWriter(self.destination, output_format, self.destination_conn_id, schema) as writer,
        ):
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


@contextlib.contextmanager
def closing_if_possible(items: Iterable[Any]) -> Iterator[None]:
    """Close ``items`` on the way out if it can be closed (a generator, a streamed response)."""
    try:
        yield
    finally:
        close = getattr(items, "close", None)
        if callable(close):
            close()


def _is_backfill(context: Context) -> bool:
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return str(getattr(run_type, "value", run_type)) == "backfill"


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
