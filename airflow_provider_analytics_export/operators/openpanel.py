"""Export OpenPanel events and charts of a time window to object storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context, ObjectStoragePath

from airflow_provider_analytics_export.files.schemas import OPENPANEL_EVENTS, openpanel_chart
from airflow_provider_analytics_export.hooks.openpanel import (
    CHARTS_ENDPOINT,
    EVENTS_ENDPOINT,
    OpenPanelHook,
    chart_rows,
    check_chart_coverage,
    check_chart_window,
    check_date_range_exclusive,
    validate_chart_args,
    validate_event_args,
)
from airflow_provider_analytics_export.operators.base import BaseExportOperator, RowPages
from airflow_provider_analytics_export.validation import is_templated
from airflow_provider_analytics_export.windows import to_datetime, window_fields


class OpenPanelEventsExportOperator(BaseExportOperator):
    """Write every OpenPanel event created in [start, end) to ``destination``, exactly once.

    Every row has every event column (properties included) unless ``fields`` narrows them,
    whatever the server sends by default; rows come newest first, as the server lists them.
    OpenPanel dates are inclusive UTC days: a daily run for 2024-04-15 asks for
    2024-04-15..2024-04-15, and rows outside [start, end) are dropped, so hourly runs
    neither double nor lose events. For past days the pages after the first are fetched
    ``max_concurrency`` at a time within 100 requests / 10 s and ``meta.totalCount`` must
    match; when the days include today, pages are read in turn so live traffic (new events
    on top) repeats rows, which are dropped, and never skips one (see the README). A
    mismatch fails the task without touching the destination.

    :param destination: where to write (templated), e.g. ``s3://bucket/openpanel/{{ ds }}/events.jsonl``.
    :param project_id: the project (templated); default: the connection extra ``project_id``.
    :param openpanel_conn_id: the OpenPanel connection (templated).
    :param start: window start, inclusive (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param events: event name(s) to export (templated); default: all.
    :param profile_id: only this profile's events, with the anonymous events of its devices
        that the server stitches in (templated).
    :param includes: more columns: ``profile``, ``meta``, ``importedAt`` (templated).
    :param fields: the event columns to export (templated); default: all of ``EVENT_FIELDS``.
        ``id`` and ``createdAt`` are always exported.
    :param page_size: events per request, 1..1000.
    :param max_concurrency: pages in flight at once after the first, 1..32.
    :param output_format: ``jsonl``, ``csv`` or ``parquet``; default: the destination suffix.
    :param destination_conn_id: connection for the destination's object storage (templated).
    """

    lineage_source = (OpenPanelHook, EVENTS_ENDPOINT)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "project_id",
        "openpanel_conn_id",
        "events",
        "profile_id",
        "includes",
        "fields",
    )

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        project_id: str | None = None,
        openpanel_conn_id: str = OpenPanelHook.default_conn_name,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        events: str | Sequence[str] | None = None,
        profile_id: str | None = None,
        includes: str | Sequence[str] | None = None,
        fields: str | Sequence[str] | None = None,
        page_size: int = 1000,
        max_concurrency: int = 4,
        output_format: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            destination=destination,
            start=start,
            end=end,
            output_format=output_format,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )
        self.project_id = project_id
        self.openpanel_conn_id = openpanel_conn_id
        self.events = events
        self.profile_id = profile_id
        self.includes = includes
        self.fields = fields
        self.page_size = page_size
        self.max_concurrency = max_concurrency
        validate_event_args(
            None if is_templated(events) else events,
            None if is_templated(includes) else includes,
            page_size,
            max_concurrency,
            None if is_templated(fields) else fields,
        )

    def export(self, context: Context, output_format: str) -> RowPages:
        window = self.export_window(context)
        hook = OpenPanelHook(openpanel_conn_id=self.openpanel_conn_id)
        pages = hook.iter_event_pages(
            self.project_id or None,
            *window,
            events=self.events or None,
            profile_id=self.profile_id or None,
            includes=self.includes or None,
            page_size=self.page_size,
            max_concurrency=self.max_concurrency,
            fields=self.fields or None,
        )
        _, columns = validate_event_args(self.events, self.includes, self.page_size, 1, self.fields)
        return RowPages(window=window, pages=pages, schema=OPENPANEL_EVENTS.select(columns))


class OpenPanelChartsExportOperator(BaseExportOperator):
    """Write an OpenPanel chart as rows: one per (series, date), with breakdown values and count.

    Columns: ``series_id``, ``event``, ``names``, ``breakdown_<name>`` per breakdown (""
    when the value is empty), ``date`` (the bucket's start, ISO with the organization's
    offset), ``count`` and, with ``previous``, ``previous_value``, ``previous_diff`` (percent)
    and ``previous_state`` (positive/negative/neutral). Without ``date_range`` the chart
    covers [start, end) (default: the data interval), which must fall on ``interval``
    boundaries of the organization's time zone (connection extra ``timezone``) so no bucket
    is partly outside it.

    :param destination: where to write (templated), e.g. ``s3://bucket/openpanel/{{ ds }}/chart.csv``.
    :param events: event configurations (templated, JSON): name, filters, segment, property.
    :param project_id: the project (templated); default: the connection extra ``project_id``.
    :param openpanel_conn_id: the OpenPanel connection (templated).
    :param breakdowns: dimensions such as ``[{"name": "country"}]`` (templated, JSON).
    :param interval: minute, hour, day, week or month.
    :param date_range: a predefined range such as ``7d`` instead of the window (templated).
    :param start: window start, inclusive (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param previous: also export the previous period's value, its change and direction.
    :param output_format: ``jsonl``, ``csv`` or ``parquet``; default: the destination suffix.
    :param destination_conn_id: connection for the destination's object storage (templated).
    """

    lineage_source = (OpenPanelHook, CHARTS_ENDPOINT)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "project_id",
        "openpanel_conn_id",
        "events",
        "breakdowns",
        "date_range",
    )
    template_fields_renderers = {"events": "json", "breakdowns": "json"}

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        events: Sequence[Mapping[str, Any]] | str,
        project_id: str | None = None,
        openpanel_conn_id: str = OpenPanelHook.default_conn_name,
        breakdowns: Sequence[Mapping[str, Any]] | str | None = None,
        interval: str = "day",
        date_range: str | None = None,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        previous: bool = False,
        output_format: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            destination=destination,
            start=start,
            end=end,
            output_format=output_format,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )
        self.events = events
        self.project_id = project_id
        self.openpanel_conn_id = openpanel_conn_id
        self.breakdowns = breakdowns
        self.interval = interval
        self.date_range = date_range
        self.previous = previous
        check_date_range_exclusive(date_range, start, end)
        if not is_templated([events, breakdowns, date_range]):
            validate_chart_args(events, breakdowns, interval, date_range)
        if date_range is None:
            check_chart_window(_static_moment(start, "start"), _static_moment(end, "end"), interval)

    def execute(self, context: Context) -> dict[str, Any]:
        events, breakdowns = validate_chart_args(self.events, self.breakdowns, self.interval, self.date_range)
        window = None if self.date_range else self.export_window(context)
        hook = OpenPanelHook(openpanel_conn_id=self.openpanel_conn_id)
        zone = hook.timezone
        if window:
            check_chart_window(*window, self.interval, zone)
        start, end = window or (None, None)
        chart = hook.get_chart(
            self.project_id or None,
            events,
            breakdowns,
            interval=self.interval,
            date_range=self.date_range or None,
            start=start,
            end=end,
            previous=self.previous,
        )
        if window:
            check_chart_coverage(chart, window, self.interval, zone)
        schema = openpanel_chart([str(dim["name"]) for dim in breakdowns], self.previous)
        with self.open_writer(schema) as writer:
            writer.write_rows(list(chart_rows(chart, breakdowns, self.previous, window, zone)))
        return {
            **writer.summary(),
            "series": len(chart.get("series", [])),
            **(window_fields(*window) if window else {}),
        }


def _static_moment(value: dt.datetime | str | None, name: str) -> dt.datetime | None:
    """``value`` as a datetime when it is known at DAG parse (given and not templated)."""
    return None if value in (None, "") or is_templated(value) else to_datetime(value, name)
