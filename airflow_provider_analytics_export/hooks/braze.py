"""Braze ``/sessions/data_series``: GET with a bearer key on the instance's own REST host."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.windows import aligned_window, in_window, split_window, to_datetime

if TYPE_CHECKING:
    import requests

DATA_SERIES_ENDPOINT = "/sessions/data_series"
#: Bucket size of each documented ``unit``.
UNITS: dict[str, dt.timedelta] = {"day": dt.timedelta(days=1), "hour": dt.timedelta(hours=1)}
#: Documented bounds of ``length`` (units per request).
MIN_LENGTH, MAX_LENGTH = 1, 100


def validate_unit(unit: Any) -> dt.timedelta:
    """The bucket size of ``unit``; a clear error naming the allowed units otherwise."""
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r} is not a Braze series unit; use one of {', '.join(UNITS)}.")
    return UNITS[unit]


def validate_length(length: Any) -> int:
    """``length`` as the API accepts it: an integer within 1..100."""
    if isinstance(length, bool) or not isinstance(length, int) or not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(
            f"length={length!r} is out of range; Braze series take an integer from {MIN_LENGTH} to "
            f"{MAX_LENGTH} (use iter_sessions_series() for longer windows)."
        )
    return length


class BrazeHook(AnalyticsApiHook):
    """Talks to Braze's sessions analytics API.

    Connection: host = the instance REST endpoint (required, e.g.
    ``https://rest.iad-01.braze.com``), password = REST API key with the
    ``sessions.data_series`` permission.

    :param braze_conn_id: the Airflow connection id (``braze_default``).
    """

    conn_name_attr = "braze_conn_id"
    default_conn_name = "braze_default"
    conn_type = "braze"
    hook_name = "Braze"
    api_name = "Braze"
    default_host = None

    def __init__(self, braze_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=braze_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret(self.connection.password, 'REST API key (password)')}"}

    def check_connection(self) -> None:
        self.request("GET", DATA_SERIES_ENDPOINT, params={"length": 1, "unit": "day"})

    def get_sessions_series(
        self,
        length: int,
        unit: str = "day",
        ending_at: dt.datetime | str | None = None,
        app_id: str | None = None,
        segment_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One call: up to ``length`` points ``{"time", "sessions"}``, oldest first.

        Braze answers with the ``length`` buckets that end with the bucket containing
        ``ending_at`` (default: now).

        :param length: number of units, 1..100.
        :param unit: ``day`` or ``hour``.
        :param ending_at: a moment inside the last bucket wanted (datetime or ISO-8601).
        :param app_id: limit to one app (API identifier).
        :param segment_id: limit to one analytics-enabled segment.
        """
        validate_unit(unit)
        params: dict[str, Any] = {"length": validate_length(length), "unit": unit}
        if ending_at is not None:
            params["ending_at"] = to_datetime(ending_at, "ending_at").isoformat(timespec="seconds")
        params.update(
            {key: value for key, value in (("app_id", app_id), ("segment_id", segment_id)) if value}
        )
        return self.request("GET", DATA_SERIES_ENDPOINT, params=params, parse=self._parse_series)

    def _parse_series(self, response: requests.Response) -> list[dict[str, Any]]:
        return self.series_rows(
            response, "GET", DATA_SERIES_ENDPOINT, "time", lambda body: body.get("message") == "success"
        )

    def iter_sessions_series(
        self,
        start: dt.datetime,
        end: dt.datetime,
        unit: str = "day",
        app_id: str | None = None,
        segment_id: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Points whose bucket starts in [start, end), one list per request, oldest first.

        The window is widened to whole buckets and split into consecutive requests of at
        most 100 units, each asking for exactly its own buckets, so every bucket is fetched
        once; points outside [start, end) (a partial first bucket) are dropped.

        :param start: window start (inclusive).
        :param end: window end (exclusive).
        :param unit: ``day`` or ``hour``.
        :param app_id: limit to one app (API identifier).
        :param segment_id: limit to one analytics-enabled segment.
        """
        step = validate_unit(unit)
        start, end = to_datetime(start, "start"), to_datetime(end, "end")
        lower, upper = aligned_window(start, end, step)
        for chunk_start, chunk_end in split_window(lower, upper, step * MAX_LENGTH):
            # Any moment inside the last bucket selects it; its last second also suits an API
            # that reads ``ending_at`` as "up to and including this moment".
            points = self.get_sessions_series(
                (chunk_end - chunk_start) // step,
                unit,
                ending_at=chunk_end - dt.timedelta(seconds=1),
                app_id=app_id,
                segment_id=segment_id,
            )
            checked = self._checked(points, chunk_start, chunk_end)
            yield [point for point in checked if in_window(to_datetime(point["time"], "time"), start, end)]

    def _checked(
        self, points: list[dict[str, Any]], chunk_start: dt.datetime, chunk_end: dt.datetime
    ) -> list[dict[str, Any]]:
        """Refuse points outside the requested buckets or repeated: they would double rows across requests."""
        seen: set[str] = set()
        for point in points:
            moment = to_datetime(point["time"], "time")
            if not in_window(moment, chunk_start, chunk_end) or point["time"] in seen:
                raise ExportIntegrityError(
                    f"Braze returned point time={point['time']!r} for the buckets "
                    f"[{chunk_start.isoformat()}, {chunk_end.isoformat()}) it was asked for"
                    + (" twice" if point["time"] in seen else "")
                    + "; refusing to write a doubled or shifted series."
                )
            seen.add(point["time"])
        return points
