"""Braze ``/sessions/data_series``: GET with a bearer key on the instance's own REST host."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.files.schemas import Column, Schema
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.paging.chunks import BucketChunker
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.transport.responses import series_rows
from airflow_provider_analytics_export.validation import check_choice, check_int_range
from airflow_provider_analytics_export.windows import UTC, calendar_bucket, check_whole_buckets, to_datetime

if TYPE_CHECKING:
    import requests

DATA_SERIES_ENDPOINT = "/sessions/data_series"
#: The documented ``unit`` values: the workspace's calendar days or hours.
UNITS: tuple[str, ...] = ("day", "hour")
#: Documented bounds of ``length`` (units per request).
MIN_LENGTH, MAX_LENGTH = 1, 100


#: Braze ``/sessions/data_series`` rows as the operator writes them.
BRAZE_SESSIONS = Schema(
    "braze_sessions",
    (
        Column("time", "string", "The bucket as Braze wrote it: a date, or a time maybe without offset."),
        Column("bucket_start", "timestamp", "Start of the bucket in UTC (time read in the workspace zone)."),
        Column("sessions", "int64", "Number of sessions in the bucket."),
        Column("app_id", "string", "The app_id filter of the export (null: all apps)."),
        Column("segment_id", "string", "The segment_id filter of the export (null: no segment)."),
    ),
)


def validate_unit(unit: Any) -> str:
    """``unit`` if Braze series take it (``day`` or ``hour``)."""
    return check_choice("unit", unit, UNITS)


class BrazeHook(AnalyticsApiHook):
    """Talks to Braze's sessions analytics API.

    Connection: host = the instance REST endpoint (required, e.g.
    ``https://rest.iad-01.braze.com``), password = REST API key with the
    ``sessions.data_series`` permission, extra ``timezone`` = the workspace's company time
    zone (default UTC), which days and offset-less hourly times follow.
    """

    conn_type = "braze"
    hook_name = "Braze"
    default_host = None
    #: Every answer reports the shared 250,000/hour pool; a 429 carries no Retry-After, only the reset.
    rate_limit_headers = RateLimitHeaders(reset_is="epoch")

    def auth_headers(self) -> dict[str, str]:
        key = self.required_credential(self.connection.password, "REST API key (password)")
        return {"Authorization": f"Bearer {key}"}

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
        length = check_int_range("length", length, MIN_LENGTH, MAX_LENGTH)
        params: dict[str, Any] = {"length": length, "unit": unit}
        if ending_at is not None:
            params["ending_at"] = to_datetime(ending_at, "ending_at").isoformat(timespec="seconds")
        params.update(
            {key: value for key, value in (("app_id", app_id), ("segment_id", segment_id)) if value}
        )
        return self.request("GET", DATA_SERIES_ENDPOINT, params=params, parse=self._parse_series)

    def _parse_series(self, response: requests.Response) -> list[dict[str, Any]]:
        return series_rows(
            response,
            self.api_name,
            "GET",
            DATA_SERIES_ENDPOINT,
            "time",
            lambda body: body.get("message") == "success",
        )

    @cached_property
    def timezone(self) -> dt.tzinfo:
        """The workspace's company time zone (connection extra ``timezone``, default UTC)."""
        tz: dt.tzinfo = self.extra("timezone")
        return tz

    def bucket(self, moment: dt.datetime, unit: str) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of the ``unit`` bucket holding ``moment``, in the workspace time zone."""
        validate_unit(unit)
        return calendar_bucket(moment, "day" if unit == "day" else "hour", self.timezone)

    def bucket_start(self, time: Any) -> dt.datetime:
        """The UTC start of the bucket a point's ``time`` names.

        A date (``day``) is local midnight, a time without an offset is local time, both in
        the workspace time zone; a time with ``Z`` or an offset is that instant.
        """
        try:
            parsed = dt.datetime.fromisoformat(str(time).strip().replace("Z", "+00:00"))  # 3.10: no "Z"
        except ValueError:
            raise ExportIntegrityError(
                f"Braze returned point time={time!r}, which is not an ISO-8601 date or time."
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.timezone)
        return parsed.astimezone(UTC)

    def iter_sessions_series(
        self,
        start: dt.datetime,
        end: dt.datetime,
        unit: str = "day",
        app_id: str | None = None,
        segment_id: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Points whose bucket starts in [start, end), one list per request, oldest first.

        Buckets are the days or hours of the workspace time zone, and [start, end) must
        cover whole buckets: a bucket cut by the window would be written before it is
        complete and never corrected. The window is split into consecutive requests of at
        most 100 buckets (:class:`BucketChunker`), each asking for exactly its own, so every
        bucket is fetched once.
        Each point gets ``bucket_start`` (ISO-8601 UTC) from its ``time``, however Braze
        wrote it; a point that is not one of the buckets asked for, or comes twice, fails.

        :param start: window start (inclusive), on a bucket boundary.
        :param end: window end (exclusive), on a bucket boundary.
        :param unit: ``day`` or ``hour``.
        :param app_id: limit to one app (API identifier).
        :param segment_id: limit to one analytics-enabled segment.
        """
        validate_unit(unit)
        start, end = to_datetime(start, "start"), to_datetime(end, "end")
        check_whole_buckets(start, end, lambda moment: self.bucket(moment, unit)[0], unit, "unit")
        chunker = BucketChunker(lambda moment: self.bucket(moment, unit)[1], MAX_LENGTH)
        for chunk in chunker.chunks(start, end):
            # Any moment inside the last bucket selects it; its last second also suits an API
            # that reads ``ending_at`` as "up to and including this moment".
            points = self.get_sessions_series(
                len(chunk.buckets), unit, chunk.end - dt.timedelta(seconds=1), app_id, segment_id
            )
            yield self._checked(points, chunk.buckets)

    def _checked(self, points: list[dict[str, Any]], asked: Sequence[dt.datetime]) -> list[dict[str, Any]]:
        """Refuse points outside the requested buckets or repeated: they would double rows across requests."""
        wanted, seen = set(asked), set()
        out = []
        for point in points:
            moment = self.bucket_start(point["time"])
            if moment not in wanted or moment in seen:
                raise ExportIntegrityError(
                    f"Braze returned point time={point['time']!r} (bucket {moment.isoformat()}) for the "
                    f"{len(asked)} {self.timezone} buckets from {asked[0].isoformat()} it was asked for"
                    + (" twice" if moment in seen else "")
                    + "; refusing to write a doubled or shifted series (is the connection's "
                    "timezone extra the workspace's company time zone?)."
                )
            seen.add(moment)
            out.append({**point, "bucket_start": moment.isoformat().replace("+00:00", "Z")})
        return out
