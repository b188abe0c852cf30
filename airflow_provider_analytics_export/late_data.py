"""Late data: when a window may be exported (settle) and which earlier windows to export again (revisit).

The services keep changing a window after it closes (README "Late data"): OpenPanel flushes
events every 10 s and accepts back-dated ones, Braze sessions stay open for 30 minutes, and
counts are recomputed by vendors' pipelines. An export therefore waits ``settle`` after its
window's end, and may re-export the ``revisit`` previous windows of the same schedule into
their own partitions, each replaced only if its content changed. This module holds the
maths (previous windows, the template context of a window) and the record of corrections.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_analytics_export.exceptions import AnalyticsExportError

if TYPE_CHECKING:
    from airflow.sdk import Context

UTC = dt.timezone.utc
Window = tuple[dt.datetime, dt.datetime]

#: More previous windows than this is a mistake (a horizon of years on an hourly schedule).
MAX_REVISITS = 400


def validate_settle(settle: Any) -> dt.timedelta | None:
    """``settle`` as a timedelta (None: the operator's default); seconds are accepted too."""
    if settle is None:
        return None
    if isinstance(settle, (int, float)) and not isinstance(settle, bool):
        settle = dt.timedelta(seconds=settle)
    if not isinstance(settle, dt.timedelta) or settle < dt.timedelta(0):
        raise ValueError(
            f"settle={settle!r} is not allowed; use a timedelta (or seconds) >= 0, e.g. "
            "timedelta(minutes=5), or None for the operator's default."
        )
    return settle


def validate_revisit(revisit: Any) -> int | dt.timedelta:
    """``revisit`` as a number of previous windows (0: none) or a horizon timedelta."""
    if isinstance(revisit, int) and not isinstance(revisit, bool) and 0 <= revisit <= MAX_REVISITS:
        return revisit
    if isinstance(revisit, dt.timedelta) and revisit >= dt.timedelta(0):
        return revisit
    raise ValueError(
        f"revisit={revisit!r} is not allowed; use an int 0..{MAX_REVISITS} (previous windows of the "
        "schedule) or a timedelta >= 0 (every window starting within that horizon before this one)."
    )


def previous_window(window: Window, timetable: Any = None) -> Window:
    """The window of the schedule just before ``window``.

    A cron timetable's previous run in its own time zone (so local days across a DST change
    are 23 or 25 hours), a delta timetable's delta, else a step of the window's own length.
    """
    from airflow_provider_analytics_export.compat import coerce_datetime, timetable_attribute

    start, end = window
    expression = timetable_attribute(timetable, "expression")
    zone = timetable_attribute(timetable, "timezone")
    if isinstance(expression, str) and zone is not None:
        # Airflow's own cron maths (the scheduler's), DST included: the interval ending at ``start``.
        from airflow.timetables.interval import CronDataIntervalTimetable

        interval = CronDataIntervalTimetable(expression, zone).infer_manual_data_interval(
            run_after=coerce_datetime(start)
        )
        if interval.end == start and interval.start < start:
            return to_utc(interval.start), start
    delta = timetable_attribute(timetable, "delta")
    if delta is not None:
        previous = (start - delta).astimezone(UTC)
        if previous < start:
            return previous, start
    return start - (end - start), start


def to_utc(moment: dt.datetime) -> dt.datetime:
    """A plain UTC datetime (pendulum's arithmetic differs in places; windows are plain datetimes)."""
    return dt.datetime.fromtimestamp(moment.timestamp(), UTC)


def revisit_windows(window: Window, revisit: int | dt.timedelta, timetable: Any = None) -> list[Window]:
    """The windows to export again before ``window``, newest first.

    :param revisit: how many previous windows, or a horizon: every previous window that
        starts no earlier than ``window``'s start minus it.
    """
    if not revisit:
        return []
    earliest = window[0] - revisit if isinstance(revisit, dt.timedelta) else None
    windows: list[Window] = []
    current = window
    while len(windows) < (revisit if isinstance(revisit, int) else MAX_REVISITS):
        current = previous_window(current, timetable)
        if earliest is not None and current[0] < earliest:
            break
        windows.append(current)
    return windows


def window_context(context: Mapping[str, Any], window: Window) -> Context:
    """A copy of ``context`` whose window-dependent keys describe ``window``, as Airflow makes them.

    The logical date is the window's start or end where the run's is its interval's start or end
    (scheduled, or manual runs), else it keeps its offset from the start.
    """
    from airflow_provider_analytics_export.compat import coerce_datetime

    start, end = (coerce_datetime(moment.astimezone(UTC)) for moment in window)
    run_start, run_end = context.get("data_interval_start"), context.get("data_interval_end")
    run_logical = context.get("logical_date")
    if run_logical is None or run_start is None or run_logical == run_start:
        logical = start
    elif run_logical == run_end:  # manual runs and `airflow dags test`: the interval's end
        logical = end
    else:
        logical = start + (run_logical - run_start)
    ts = logical.isoformat()
    ds = logical.strftime("%Y-%m-%d")
    window_keys = {
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": logical,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
    }
    return cast("Context", {**context, **window_keys})


@dataclass(frozen=True)
class Correction:
    """What revisiting one earlier window did to its partition (an item of the result's ``revisits``).

    :param rows_before: records the partition held before (None: it did not exist or could not be read).
    :param replaced: False when the fresh export was byte for byte what the partition held.
    """

    window_start: str
    window_end: str
    uri: str
    rows_before: int | None
    rows_after: int
    replaced: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_corrections(revisits: list[Mapping[str, Any]]) -> str:
    """The closing line's part about revisits: how many, how many replaced, and each change's counts."""
    replaced = [item for item in revisits if item.get("replaced")]
    changes = ", ".join(
        f"{item['window_start']} {item.get('rows_before')}->{item.get('rows_after')}" for item in replaced
    )
    return f" revisited={len(revisits)} replaced={len(replaced)}" + (f" ({changes})" if changes else "")


class RevisitError(AnalyticsExportError):
    """Some revisited windows failed; every other one was exported (and committed or left) as usual."""
