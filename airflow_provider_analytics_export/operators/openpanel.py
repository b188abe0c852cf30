"""Export OpenPanel events and charts of a time window to object storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_analytics_export.hooks.openpanel import CHARTS_ENDPOINT, EVENTS_ENDPOINT, OpenPanelHook
from airflow_provider_analytics_export.hooks.openpanel_charts import (
    chart_rows,
    chart_schema,
    check_chart_coverage,
    check_chart_window,
    events_without_series,
)
from airflow_provider_analytics_export.hooks.openpanel_query import (
    OPENPANEL_EVENTS,
    ChartQuery,
    EventQuery,
    check_date_range_exclusive,
)
from airflow_provider_analytics_export.operators.base import BaseExportOperator, RowPages
from airflow_provider_analytics_export.validation import is_templated


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
    filter_fields = ("events", "profile_id")
    #: Events wait in a queue and a 10 s flush buffer first (README "Late data").
    default_settle = dt.timedelta(minutes=2)
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
        project_id: str | None = None,
        openpanel_conn_id: str = OpenPanelHook.default_conn_name,
        events: str | Sequence[str] | None = None,
        profile_id: str | None = None,
        includes: str | Sequence[str] | None = None,
        fields: str | Sequence[str] | None = None,
        page_size: int = 1000,
        max_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_id = project_id
        self.openpanel_conn_id = openpanel_conn_id
        self.events = events
        self.profile_id = profile_id
        self.includes = includes
        self.fields = fields
        self.page_size = page_size
        self.max_concurrency = max_concurrency
        EventQuery.build(
            None if is_templated(events) else events,
            None if is_templated(includes) else includes,
            page_size,
            max_concurrency,
            None if is_templated(fields) else fields,
        )

    def export(self, context: Context, output_format: str) -> RowPages:
        query = EventQuery.build(
            self.events or None,
            self.includes or None,
            self.page_size,
            self.max_concurrency,
            self.fields or None,
            self.profile_id or None,
        )
        window = self.export_window(context)
        hook = OpenPanelHook(openpanel_conn_id=self.openpanel_conn_id)
        pages = hook.event_pages(query, window, self.project_id or None)
        return RowPages(window=window, pages=pages, schema=OPENPANEL_EVENTS.select(query.columns))


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
    #: Charts count the same buffered events (README "Late data").
    default_settle = OpenPanelEventsExportOperator.default_settle
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
        events: Sequence[Mapping[str, Any]] | str,
        project_id: str | None = None,
        openpanel_conn_id: str = OpenPanelHook.default_conn_name,
        breakdowns: Sequence[Mapping[str, Any]] | str | None = None,
        interval: str = "day",
        date_range: str | None = None,
        previous: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.events = events
        self.project_id = project_id
        self.openpanel_conn_id = openpanel_conn_id
        self.breakdowns = breakdowns
        self.interval = interval
        self.date_range = date_range
        self.previous = previous
        check_date_range_exclusive(date_range, self.start, self.end)
        if not is_templated([events, breakdowns, date_range]):
            ChartQuery.build(events, breakdowns, interval, date_range, previous)
        if date_range is None:
            start_moment, end_moment = self.static_window()
            check_chart_window(start_moment, end_moment, interval)

    def export(self, context: Context, output_format: str) -> RowPages:
        query = ChartQuery.build(self.events, self.breakdowns, self.interval, self.date_range, self.previous)
        window = None if query.date_range else self.export_window(context)
        hook = OpenPanelHook(openpanel_conn_id=self.openpanel_conn_id)
        zone = hook.timezone
        if window:
            check_chart_window(*window, self.interval, zone)
        chart = hook.fetch_chart(query, window, self.project_id or None)
        if window:
            check_chart_coverage(chart, window, self.interval, zone)
        absent = events_without_series(chart, query.events)
        if absent:
            self.log.warning(
                "OpenPanel chart has no series for event(s) %s in %s: none occurred there (the server "
                "leaves such events out), so the file has no rows for them.",
                ", ".join(absent),
                f"[{window[0].isoformat()}, {window[1].isoformat()})" if window else query.date_range,
            )
        return RowPages(
            window=window,
            pages=[list(chart_rows(chart, query.breakdowns, self.previous, window, zone))],
            schema=chart_schema(query.breakdown_names, self.previous),
            fields={"series": len(chart.get("series", [])), "events_without_data": absent},
            counted_as="requests",
        )
