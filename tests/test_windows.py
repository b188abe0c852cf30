"""Window resolution and splitting: [start, end) semantics."""

from __future__ import annotations

import datetime as dt
from functools import partial
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_analytics_export.windows import (
    calendar_bucket,
    check_whole_buckets,
    covering_dates,
    floor_to,
    resolve_window,
    to_datetime,
)

UTC = dt.timezone.utc
D = dt.datetime(2024, 4, 15, tzinfo=UTC)


def test_window_defaults_to_the_data_interval():
    context = {"data_interval_start": D, "data_interval_end": D + dt.timedelta(days=1)}
    assert resolve_window(None, None, context) == (D, D + dt.timedelta(days=1))


def test_explicit_strings_override_the_interval_and_are_utc():
    start, end = resolve_window("2024-04-15T02:00:00+02:00", "2024-04-16", {})
    assert start == dt.datetime(2024, 4, 15, 0, tzinfo=UTC) and end == dt.datetime(2024, 4, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    "context",
    [{"data_interval_start": D, "data_interval_end": D}, {}],
    ids=["empty-interval", "no-interval"],
)
def test_empty_or_missing_window_explains_the_fix(context):
    with pytest.raises(ValueError, match="CronDataIntervalTimetable") as info:
        resolve_window(None, None, context)
    assert "start= and end=" in str(info.value)


def test_bad_date_names_the_parameter():
    with pytest.raises(ValueError, match=r"start='yesterday' is not a date or datetime; use ISO-8601"):
        to_datetime("yesterday", "start")


def test_alignment_and_inclusive_dates():
    moment = dt.datetime(2024, 4, 15, 13, 7, tzinfo=UTC)
    hour = dt.timedelta(hours=1)
    assert floor_to(moment, hour) == dt.datetime(2024, 4, 15, 13, tzinfo=UTC)
    assert floor_to(D, hour) == D
    assert covering_dates(D, D + dt.timedelta(days=1)) == (D.date(), D.date())
    assert covering_dates(D + hour, D + 2 * hour) == (D.date(), D.date())


def test_pendulum_input_becomes_a_plain_utc_datetime_that_aligns():
    import pendulum

    start = to_datetime(pendulum.datetime(2024, 4, 15, 13, 7, tz="Europe/Madrid"))
    assert type(start) is dt.datetime and start == dt.datetime(2024, 4, 15, 11, 7, tzinfo=UTC)
    assert floor_to(start, dt.timedelta(hours=1)) == dt.datetime(2024, 4, 15, 11, tzinfo=UTC)


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("moment", "unit", "zone", "bucket"),
    [
        # 2024-03-10 in New York has 23 hours, 2024-11-03 has 25.
        (dt.datetime(2024, 3, 10, 12, tzinfo=UTC), "day", NEW_YORK, ("2024-03-10T05:00", "2024-03-11T04:00")),
        (dt.datetime(2024, 11, 3, 12, tzinfo=UTC), "day", NEW_YORK, ("2024-11-03T04:00", "2024-11-04T05:00")),
        (
            dt.datetime(2024, 11, 3, 3, 59, tzinfo=UTC),
            "day",
            NEW_YORK,
            ("2024-11-02T04:00", "2024-11-03T04:00"),
        ),
        # The repeated 01:00 hour of the fall-back day is two distinct hour buckets.
        (
            dt.datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
            "hour",
            NEW_YORK,
            ("2024-11-03T05:00", "2024-11-03T06:00"),
        ),
        (
            dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC),
            "hour",
            NEW_YORK,
            ("2024-11-03T06:00", "2024-11-03T07:00"),
        ),
        # Half-hour offsets: local hours start at :30 UTC.
        (
            dt.datetime(2024, 3, 1, 10, 10, tzinfo=UTC),
            "hour",
            ZoneInfo("Asia/Kolkata"),
            ("2024-03-01T09:30", "2024-03-01T10:30"),
        ),
        (dt.datetime(2024, 3, 1, 23, 59, tzinfo=UTC), "day", UTC, ("2024-03-01T00:00", "2024-03-02T00:00")),
    ],
)
def test_calendar_bucket_follows_the_zone_across_dst(moment, unit, zone, bucket):
    expected = tuple(dt.datetime.fromisoformat(edge).replace(tzinfo=UTC) for edge in bucket)
    assert calendar_bucket(moment, unit, zone) == expected


def test_check_whole_buckets_names_the_bound_and_accepts_edges_and_unknowns():
    hour = partial(floor_to, step=dt.timedelta(hours=1))
    check_whole_buckets(D, D + dt.timedelta(hours=3), hour, "1h", "interval")
    check_whole_buckets(None, D + dt.timedelta(minutes=5), lambda m: m, "1h", "interval")
    with pytest.raises(ValueError, match=r"^end=2024-04-15T03:05:00\+00:00 does not fall on a interval='1h'"):
        check_whole_buckets(D, D + dt.timedelta(hours=3, minutes=5), hour, "1h", "interval")
    with pytest.raises(ValueError, match=r"^start=2024-04-15T00:30:00\+00:00 .* choose a finer unit\.$"):
        check_whole_buckets(D + dt.timedelta(minutes=30), None, hour, "hour", "unit")
