"""Peer5 ``/v1/export``: POST time series with an ``X-Auth-Token`` header.

The documented limits are enforced here, before any request: epoch-ms bounds rounded to
the interval, a maximum query range per interval (long windows are split into chunks)
and a recency limit per interval (a window the API can never serve is refused with the
coarser intervals that would work).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.windows import (
    UTC,
    aligned_window,
    floor_to,
    in_window,
    is_aligned,
    split_window,
    to_datetime,
)

if TYPE_CHECKING:
    import requests

EXPORT_ENDPOINT = "/v1/export"
DAY_MS = 86_400_000
_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)

#: Documented intervals, finest first.
INTERVALS: dict[str, dt.timedelta] = {
    "1m": dt.timedelta(minutes=1),
    "5m": dt.timedelta(minutes=5),
    "10m": dt.timedelta(minutes=10),
    "30m": dt.timedelta(minutes=30),
    "1h": _HOUR,
    "3h": 3 * _HOUR,
    "12h": 12 * _HOUR,
    "1d": _DAY,
    "7d": 7 * _DAY,
    "14d": 14 * _DAY,
}
METRICS = ("http", "p2p", "played", "rebuffered", "sessions")
#: Keys accepted both as filters and as dimensions.
FIELDS = ("browser.name", "country.code", "city.name", "isp.name", "os.name", "session.page")
MAX_DIMENSIONS = 2
OUTPUTS = ("json", "csv")
#: Bound on buckets per request where the API sets no range limit, so one response stays small.
MAX_BUCKETS_PER_REQUEST = 1000
#: The first bytes of every CSV export: its header, whose first column is the bucket timestamp.
CSV_HEADER_START = re.compile(rb'(?:\xef\xbb\xbf)?"?timestamp"?(?:,|\r?\n|$)')


@dataclass(frozen=True)
class IntervalLimit:
    """Documented limits of one interval: longest query range and how far back data is served."""

    max_range: dt.timedelta | None
    max_age: dt.timedelta | None


LIMITS: dict[str, IntervalLimit] = {
    **dict.fromkeys(("1m", "5m"), IntervalLimit(6 * _HOUR, 7 * _DAY)),
    **dict.fromkeys(("10m", "30m"), IntervalLimit(7 * _DAY, 14 * _DAY)),
    **dict.fromkeys(("1h", "3h", "12h"), IntervalLimit(None, 14 * _DAY)),
    **dict.fromkeys(("1d", "7d", "14d"), IntervalLimit(None, None)),
}


def now() -> dt.datetime:
    """The clock the recency limits are checked against (the one seam tests pin)."""
    return dt.datetime.now(UTC)


def _allowed(name: str, value: Any, allowed: Sequence[str]) -> str:
    return f"{name} has unknown value {value!r}; allowed values: {', '.join(allowed)}."


def validate_interval(interval: Any) -> dt.timedelta:
    """The bucket size of ``interval``, or an error listing the documented intervals."""
    if interval not in INTERVALS:
        raise ValueError(_allowed("interval", interval, list(INTERVALS)))
    return INTERVALS[interval]


def validate_query(
    interval: Any,
    metrics: Any,
    filters: Mapping[str, Any] | None = None,
    dimensions: Sequence[str] | None = None,
    output: str = "json",
) -> None:
    """Check every request field against the documented values, before anything is sent."""
    validate_interval(interval)
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics={metrics!r} must be a non-empty list of: {', '.join(METRICS)}.")
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(_allowed("metrics", metric, METRICS))
    if not isinstance(filters or {}, Mapping):
        raise ValueError(
            f"filters={filters!r} must be a mapping of field to values; fields: {', '.join(FIELDS)}."
        )
    for key, values in (filters or {}).items():
        if key not in FIELDS:
            raise ValueError(_allowed("filters", key, FIELDS))
        if not isinstance(values, (str, list, tuple)) or not all(
            isinstance(v, str) for v in _as_list(values)
        ):
            raise ValueError(f"filters[{key!r}]={values!r} must be a string or a list of strings.")
    if isinstance(dimensions, str):
        raise ValueError(f"dimensions={dimensions!r} must be a list of: {', '.join(FIELDS)}.")
    dimensions = list(dimensions or [])
    for dimension in dimensions:
        if dimension not in FIELDS:
            raise ValueError(_allowed("dimensions", dimension, FIELDS))
    if len(dimensions) > MAX_DIMENSIONS or len(set(dimensions)) != len(dimensions):
        raise ValueError(
            f"dimensions={dimensions!r}: Peer5 splits by at most {MAX_DIMENSIONS} distinct dimensions "
            f"per query; allowed values: {', '.join(FIELDS)}."
        )
    if output not in OUTPUTS:
        raise ValueError(_allowed("output", output, OUTPUTS))


def _as_list(values: str | Sequence[str]) -> list[str]:
    return [values] if isinstance(values, str) else list(values)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _serves(interval: str, start: dt.datetime, clock_now: dt.datetime) -> bool:
    """Whether ``interval`` data reaching back to ``start`` (rounded down) is within its recency limit."""
    max_age = LIMITS[interval].max_age
    return max_age is None or floor_to(start, INTERVALS[interval]) >= clock_now - max_age


def plan_chunks(
    start: dt.datetime, end: dt.datetime, interval: str, clock_now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Aligned [from, to) requests that cover the enclosing aligned window within the API's limits.

    Raises when the window reaches further back than ``interval`` is served, naming the limit
    and the coarser intervals that would work (the range limit is met by splitting instead).
    """
    step = validate_interval(interval)
    lower, upper = aligned_window(start, end, step)
    limit = LIMITS[interval]
    if not _serves(interval, start, clock_now):
        working = [
            name for name, size in INTERVALS.items() if size > step and _serves(name, start, clock_now)
        ]
        max_age = limit.max_age or dt.timedelta(0)
        raise ValueError(
            f"Peer5 serves interval={interval!r} only within the last {max_age.days} days, but "
            f"start={lower.isoformat()} is before {(clock_now - max_age).isoformat()}; "
            f"use a coarser interval: {', '.join(working)}."
        )
    span = step * MAX_BUCKETS_PER_REQUEST
    if limit.max_range is not None:
        span = min(span, limit.max_range)
    return list(split_window(lower, upper, span))


class Peer5Hook(AnalyticsApiHook):
    """Talks to Peer5's export API.

    Connection: password = auth token.

    :param peer5_conn_id: the Airflow connection id (``peer5_default``).
    """

    conn_name_attr = "peer5_conn_id"
    default_conn_name = "peer5_default"
    conn_type = "peer5"
    hook_name = "Peer5"
    api_name = "Peer5"
    default_host = "https://control.peer5.com"

    def __init__(self, peer5_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=peer5_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.secret(self.connection.password, "auth token (password)")}

    def check_connection(self) -> None:
        today = _ms(floor_to(now(), _DAY))
        body = {"from": today - DAY_MS, "to": today, "interval": "1d", "metrics": ["sessions"]}
        self.request("POST", EXPORT_ENDPOINT, params={"format": "json"}, json=body)

    @overload
    def export(
        self,
        start: dt.datetime | str,
        end: dt.datetime | str,
        interval: str,
        metrics: Sequence[str],
        filters: Mapping[str, str | Sequence[str]] | None = ...,
        dimensions: Sequence[str] | None = ...,
        output: Literal["json"] = ...,
    ) -> Iterator[list[dict[str, Any]]]: ...

    @overload
    def export(
        self,
        start: dt.datetime | str,
        end: dt.datetime | str,
        interval: str,
        metrics: Sequence[str],
        filters: Mapping[str, str | Sequence[str]] | None = ...,
        dimensions: Sequence[str] | None = ...,
        *,
        output: Literal["csv"],
    ) -> Iterator[bytes]: ...

    def export(
        self,
        start: dt.datetime | str,
        end: dt.datetime | str,
        interval: str,
        metrics: Sequence[str],
        filters: Mapping[str, str | Sequence[str]] | None = None,
        dimensions: Sequence[str] | None = None,
        output: str = "json",
    ) -> Iterator[list[dict[str, Any]]] | Iterator[bytes]:
        """Export [start, end) one request (chunk) at a time, validated before any request.

        Bounds are sent as epoch milliseconds rounded to ``interval``: an unaligned window is
        widened to the enclosing aligned window and rows whose bucket starts outside
        [start, end) are dropped, so consecutive windows never share a bucket. Long windows
        at fine intervals are split into chunks the API accepts.

        ``output="json"`` yields one list of row dicts per chunk. ``output="csv"`` yields the
        API's own CSV bytes (one header, then each chunk's rows) without parsing them; since
        dropping rows would need a parse, it requires a window aligned to ``interval``.

        :param start: window start (inclusive).
        :param end: window end (exclusive).
        :param interval: bucket size, one of ``1m 5m 10m 30m 1h 3h 12h 1d 7d 14d``.
        :param metrics: metrics to export (``http``, ``p2p``, ``played``, ``rebuffered``, ``sessions``).
        :param filters: field -> value or list of values to keep.
        :param dimensions: up to two fields to split rows by (one row per bucket and value combination).
        :param output: ``json`` (rows) or ``csv`` (bytes).
        """
        validate_query(interval, metrics, filters, dimensions, output)
        start, end = to_datetime(start, "start"), to_datetime(end, "end")
        if output == "csv" and not is_aligned(start, end, INTERVALS[interval]):
            raise ValueError(
                f"output='csv' passes Peer5's bytes through unfiltered, so start={start.isoformat()} and "
                f"end={end.isoformat()} must be aligned to interval={interval!r}; use output='json'."
            )
        chunks = plan_chunks(start, end, interval, now())
        body = {
            "interval": interval,
            "metrics": list(metrics),
            **({"filters": {key: _as_list(v) for key, v in filters.items()}} if filters else {}),
            **({"dimensions": list(dimensions)} if dimensions else {}),
        }
        if output == "csv":
            return self._csv_chunks(chunks, body)
        return self._json_chunks(chunks, body, start, end)

    def _post(
        self, chunk: tuple[dt.datetime, dt.datetime], body: dict[str, Any], fmt: str, parse: Any
    ) -> Any:
        request_body = {"from": _ms(chunk[0]), "to": _ms(chunk[1]), **body}
        return self.request("POST", EXPORT_ENDPOINT, params={"format": fmt}, json=request_body, parse=parse)

    def _json_chunks(
        self,
        chunks: list[tuple[dt.datetime, dt.datetime]],
        body: dict[str, Any],
        start: dt.datetime,
        end: dt.datetime,
    ) -> Iterator[list[dict[str, Any]]]:
        start_ms, end_ms = _ms(start), _ms(end)
        for chunk in chunks:
            rows = self._post(chunk, body, "json", self._parse_json)
            self._check_buckets(rows, chunk)
            yield [row for row in rows if start_ms <= row["timestamp"] < end_ms]

    def _parse_json(self, response: requests.Response) -> list[dict[str, Any]]:
        return self.series_rows(
            response, "POST", EXPORT_ENDPOINT, "timestamp", lambda body: not body.get("error")
        )

    def _check_buckets(self, rows: list[dict[str, Any]], chunk: tuple[dt.datetime, dt.datetime]) -> None:
        """A row outside the requested chunk would be written again by the neighbouring chunk."""
        for row in rows:
            moment = dt.datetime.fromtimestamp(row["timestamp"] / 1000, UTC)
            if not in_window(moment, *chunk):
                raise ExportIntegrityError(
                    f"Peer5 returned timestamp={row['timestamp']} outside the requested range "
                    f"[{chunk[0].isoformat()}, {chunk[1].isoformat()}); refusing to write shifted or "
                    "doubled rows."
                )

    def _parse_csv(self, response: requests.Response) -> bytes:
        """The CSV as sent, once it is one: a 200 with an HTML page or a JSON error is refused."""
        chunks = self.file_chunks(
            response,
            "POST",
            EXPORT_ENDPOINT,
            content_type="text/csv",
            start=CSV_HEADER_START,
            expected='a CSV header line starting with "timestamp"',
        )
        return b"".join(chunks)

    def _csv_chunks(
        self, chunks: list[tuple[dt.datetime, dt.datetime]], body: dict[str, Any]
    ) -> Iterator[bytes]:
        """Each chunk's CSV as sent; the header line of every chunk after the first is dropped."""
        header: bytes | None = None
        for chunk in chunks:
            content: bytes = self._post(chunk, body, "csv", self._parse_csv)
            if not content.endswith(b"\n"):
                content += b"\n"
            first_line, _, rows = content.partition(b"\n")
            if header is None:
                header = first_line
                yield content
            elif first_line != header:
                raise ExportIntegrityError(
                    f"Peer5 CSV header changed between chunks ({header!r} then {first_line!r}); "
                    "the columns would not line up."
                )
            elif rows:
                yield rows
