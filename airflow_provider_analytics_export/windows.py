"""Time windows: resolve [start, end) from arguments or the data interval; check it covers whole buckets.

Every export covers the half-open window [start, end): consecutive runs of an interval
timetable tile time exactly, so no row is exported twice or missed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Literal

UTC = dt.timezone.utc

EMPTY_WINDOW_HELP = (
    "Pass start= and end= explicitly, or schedule the DAG with an interval timetable such as "
    "CronDataIntervalTimetable('@daily', timezone='UTC') or DeltaDataIntervalTimetable(timedelta(hours=1)) "
    "(from airflow.sdk): Airflow 3's default cron schedules and manual runs have an empty data interval."
)


def to_datetime(value: dt.datetime | dt.date | str | int | float, name: str = "value") -> dt.datetime:
    """An aware UTC datetime from a datetime, date, ISO-8601 string or Unix seconds."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = dt.datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{name}={value!r} is not a date or datetime; use ISO-8601 such as "
                "'2024-04-15' or '2024-04-15T13:00:00+00:00'."
            ) from None
    else:
        raise TypeError(
            f"{name} must be a datetime, date, ISO-8601 string or Unix seconds, not {type(value)}."
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # A plain datetime even for pendulum input (Airflow's data interval): pendulum's
    # arithmetic breaks floor division by a timedelta in floor_to.
    return dt.datetime.fromtimestamp(parsed.timestamp(), UTC)


def resolve_window(
    start: Any, end: Any, context: Mapping[str, Any] | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) from the arguments, defaulting to the run's data interval; never empty."""
    context = context or {}
    start = start if start not in (None, "") else context.get("data_interval_start")
    end = end if end not in (None, "") else context.get("data_interval_end")
    if start is None or end is None:
        raise ValueError(
            f"No export window: start/end not given and the run has no data interval. {EMPTY_WINDOW_HELP}"
        )
    window = to_datetime(start, "start"), to_datetime(end, "end")
    if window[0] >= window[1]:
        raise ValueError(
            f"Empty export window: start={window[0].isoformat()} is not before end={window[1].isoformat()}. "
            f"{EMPTY_WINDOW_HELP}"
        )
    return window


def floor_to(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """Round down to a multiple of ``step`` since the Unix epoch (how time-bucketed APIs align)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // step * step


def covering_dates(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The inclusive (first, last) UTC dates that cover [start, end), for APIs with day-level dates."""
    return start.astimezone(UTC).date(), (end.astimezone(UTC) - dt.timedelta(microseconds=1)).date()


def window_fields(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """The window as the ``window_start``/``window_end`` ISO strings every export result carries."""
    return {"window_start": start.isoformat(), "window_end": end.isoformat()}


def in_window(moment: dt.datetime, start: dt.datetime, end: dt.datetime) -> bool:
    """Membership in the half-open window [start, end)."""
    return start <= moment < end


def check_whole_buckets(
    start: dt.datetime | None,
    end: dt.datetime | None,
    floor: Callable[[dt.datetime], dt.datetime],
    bucket: str,
    parameter: str,
) -> None:
    """Refuse a window whose bounds cut a bucket: it would be written partial and never corrected.

    A run ending inside a bucket writes it before it is complete, and the next run (which
    starts inside it) must not write it again, so the partial value would stay for good.

    :param start: window start; None (not known yet, e.g. templated at DAG parse) is not checked.
    :param end: window end; None is not checked.
    :param floor: the start of the bucket holding a moment.
    :param bucket: the bucket in words, e.g. ``'1h'`` or ``'day'``.
    :param parameter: the argument choosing the bucket, e.g. ``interval``.
    """
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and floor(moment) != moment:
            raise ValueError(
                f"{name}={moment.isoformat()} does not fall on a {parameter}={bucket!r} boundary, so a "
                f"{bucket} bucket would straddle the window and be written partial: align the window "
                f"(or schedule) to the {bucket}, or choose a finer {parameter}."
            )


#: Calendar buckets an API may cut time into, finest first.
BUCKET_UNITS: tuple[str, ...] = ("minute", "hour", "day", "week", "month")
BucketUnit = Literal["minute", "hour", "day", "week", "month"]


def calendar_bucket(moment: dt.datetime, unit: BucketUnit, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the ``unit`` of zone ``tz`` that holds ``moment``.

    What a server's ``toStartOf<unit>`` in the zone computes. Minutes and hours are absolute
    (60 s, 3,600 s) starting on a local whole minute or hour; days run from local midnight to
    local midnight (23 or 25 hours across a DST change), weeks from Monday, months from the 1st.
    """
    local = moment.astimezone(tz)
    if unit in ("minute", "hour"):
        floored = local.replace(second=0, microsecond=0)
        floored = floored if unit == "minute" else floored.replace(minute=0)
        first = floored.astimezone(UTC)
        return first, first + (dt.timedelta(minutes=1) if unit == "minute" else dt.timedelta(hours=1))
    day = local.date()
    if unit == "week":
        day -= dt.timedelta(days=day.weekday())
        following = day + dt.timedelta(days=7)
    elif unit == "month":
        day = day.replace(day=1)
        following = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    else:
        following = day + dt.timedelta(days=1)
    first, after = (dt.datetime.combine(d, dt.time(), tz).astimezone(UTC) for d in (day, following))
    return first, after


def bucket_starts(start: dt.datetime, end: dt.datetime, unit: BucketUnit, tz: dt.tzinfo) -> list[dt.datetime]:
    """The starts (in zone ``tz``) of the ``unit`` buckets of an aligned [start, end)."""
    out: list[dt.datetime] = []
    moment = start
    while moment < end:
        out.append(moment.astimezone(tz))
        moment = calendar_bucket(moment, unit, tz)[1]
    return out
