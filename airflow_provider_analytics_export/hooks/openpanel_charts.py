"""OpenPanel charts as rows: bucket checks in the organization's zone and chart-to-rows shaping.

A chart answer is series of points; the export writes one row per (series, bucket). The
server cuts buckets in the organization's time zone, includes the bucket holding ``endDate``
and may stop short (a lapsed subscription), so the window is checked against the buckets
here before any row is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.files.schemas import Column, Schema, columns_of
from airflow_provider_analytics_export.hooks.openpanel_query import INTERVALS
from airflow_provider_analytics_export.validation import check_choice
from airflow_provider_analytics_export.windows import BucketUnit, bucket_starts, calendar_bucket, in_window

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


def chart_schema(breakdowns: Sequence[str], previous: bool) -> Schema:
    """OpenPanel ``/export/charts`` rows: one ``breakdown_<name>`` per breakdown, previous period if asked."""
    return Schema(
        "openpanel_chart",
        (
            Column("series_id", "string", "The series id."),
            Column("event", "string", "The series' event name."),
            Column("names", "json", "The series' names as OpenPanel sends them (JSON list)."),
            *columns_of("string", "Breakdown value ('' when empty).", (f"breakdown_{b}" for b in breakdowns)),
            Column("date", "timestamp", "Start of the bucket (the organization's zone, stored as UTC)."),
            Column("count", "float64", "The bucket's value (an average for some metrics)."),
            *(
                (
                    Column("previous_value", "float64", "The previous period's value."),
                    Column("previous_diff", "float64", "Change from the previous period, percent."),
                    Column("previous_state", "string", "positive, negative or neutral."),
                )
                if previous
                else ()
            ),
        ),
    )


def check_chart_window(
    start: dt.datetime | None, end: dt.datetime | None, interval: str, zone: ZoneInfo | None = None
) -> None:
    """A chart bucket must lie wholly inside or outside [start, end), else its count spans both.

    Buckets are cut in the organization's time zone (``zone``). Without it (at DAG parse,
    before the connection is read) a bound only has to be a boundary in some zone: on a
    minute, and for hour and longer buckets on a quarter hour, as every UTC offset is a
    multiple of 15 minutes. A bound given as None (e.g. templated) is not checked.
    """
    check_choice("interval", interval, INTERVALS)
    for name, moment in (("start", start), ("end", end)):
        if moment is None:
            continue
        if zone is not None:
            unit = cast("BucketUnit", interval)
            aligned, where = calendar_bucket(moment, unit, zone)[0] == moment, f" in {zone.key}"
        else:
            step = 60 if interval == "minute" else 900
            aligned, where = moment.timestamp() % step == 0, " in any time zone"
        if not aligned:
            raise ValueError(
                f"{name}={moment.isoformat()} does not fall on a {interval} boundary{where}, so a "
                f"{interval} bucket would straddle the window: align the window (or schedule) to the "
                f"{interval} of the organization's time zone, or choose a finer interval."
            )


def check_chart_coverage(
    chart: Mapping[str, Any], window: tuple[dt.datetime, dt.datetime], interval: str, zone: ZoneInfo
) -> None:
    """Every bucket of the window must be in the answer (the server fills empty ones with 0).

    The server caps ``endDate`` at the organization's ``subscriptionChartEndDate`` without a
    word; a chart that stops early would otherwise pass for a complete one.
    """
    got = {chart_date(str(point["date"]), zone) for series in chart["series"] for point in series["data"]}
    if not got:
        return  # no event in the window: the server returns no series at all
    missing = [b for b in bucket_starts(*window, cast("BucketUnit", interval), zone) if b not in got]
    if missing:
        raise ExportIntegrityError(
            f"OpenPanel chart lacks {len(missing)} {interval} bucket(s) of the window, from "
            f"{missing[0].isoformat()}: the server cut the chart short (an organization whose "
            "subscription ended gets charts only up to its subscription end date)."
        )


def chart_date(label: str, zone: ZoneInfo) -> dt.datetime:
    """A point's ``date``: naive text in the organization's zone ("2024-04-15 00:00:00" or a date)."""
    naive = dt.datetime.fromisoformat(label)
    if naive.tzinfo is not None:  # an instant (older servers sent ISO UTC)
        return naive
    return naive.replace(tzinfo=zone)


def breakdown_labels(series: Mapping[str, Any], breakdowns: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``breakdown_<name>`` values of one series; an empty value is "".

    The server drops empty values from ``names`` and fills ``event.breakdowns`` from what is
    left by position, so with several breakdowns and some empty it cannot say which is which:
    that fails instead of shifting labels into the wrong column.
    """
    dims = [str(dim["name"]) for dim in breakdowns]
    values = list(series.get("names", []))[1:]
    if not dims:
        return {}
    if not values:
        return {f"breakdown_{dim}": "" for dim in dims}
    if len(values) == len(dims):
        given = (series.get("event") or {}).get("breakdowns") or {}
        return {
            f"breakdown_{dim}": str(given.get(dim, value)) for dim, value in zip(dims, values, strict=True)
        }
    if len(dims) == 1:
        raise ExportIntegrityError(f"OpenPanel series {series.get('id')!r} has names {series.get('names')}")
    raise ExportIntegrityError(
        f"OpenPanel series {series.get('id')!r} has {len(values)} breakdown value(s) for breakdowns "
        f"{dims}: the server drops empty values, so which breakdown is empty cannot be told. Chart "
        "one breakdown at a time, or filter the empty ones out (operator isNotNull)."
    )


def chart_rows(
    chart: Mapping[str, Any],
    breakdowns: Sequence[Mapping[str, Any]],
    previous: bool,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    zone: ZoneInfo | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per (series, bucket): event, names, breakdown values, the bucket's start, count.

    ``date`` is the bucket's start with the organization's UTC offset. With ``window``, points
    whose bucket starts outside [start, end) are dropped (the server also returns the bucket
    holding ``endDate``). With ``previous``: ``previous_value``, ``previous_diff`` (percent)
    and ``previous_state`` as the server computes them. ``chart`` is what
    :meth:`OpenPanelHook.get_chart` returns: its series, data and dates are checked there.
    """
    from zoneinfo import ZoneInfo

    tz = zone or ZoneInfo("UTC")
    for series in chart["series"]:
        labels = breakdown_labels(series, breakdowns)
        names = list(series.get("names", []))
        for point in series["data"]:
            moment = chart_date(str(point["date"]), tz)
            if window and not in_window(moment, *window):
                continue
            row = {
                "series_id": series.get("id"),
                "event": (series.get("event") or {}).get("name"),
                "names": names,
                **labels,
                "date": moment.isoformat(),
                "count": point.get("count"),
            }
            if previous:
                prior = point.get("previous") or {}
                row["previous_value"] = prior.get("value")
                row["previous_diff"] = prior.get("diff")
                row["previous_state"] = prior.get("state")
            yield row


def events_without_series(chart: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The asked events the answer has no series for: they did not occur in the range.

    The server leaves out the series of an event with no occurrence (a chart of only such
    events answers ``series: []``) instead of zero-filling it, so without this an export of
    them is an empty file that looks like nothing was asked.
    """
    present = {(series.get("event") or {}).get("name") for series in chart["series"]}
    return [str(event["name"]) for event in events if event["name"] not in present]
