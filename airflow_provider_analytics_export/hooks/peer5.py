"""Peer5 ``/v1/export``: POST time series with an ``X-Auth-Token`` header.

The documented limits are enforced here, before any request: epoch-ms bounds rounded to
the interval, a maximum query range per interval (long windows are split into chunks)
and a recency limit per interval (a window the API can never serve is refused with the
coarser intervals that would work).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.files.schemas import Column, Schema, columns_of
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.paging.chunks import BucketChunker, Chunk
from airflow_provider_analytics_export.transport.responses import file_chunks, series_rows
from airflow_provider_analytics_export.validation import check_choice, check_choices
from airflow_provider_analytics_export.windows import (
    UTC,
    check_whole_buckets,
    floor_to,
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
#: Peer5 ``/v1/export``: every documented metric and dimension; an export selects its own.
PEER5_EXPORT = Schema(
    "peer5_export",
    (
        Column("timestamp", "timestamp_ms", "Start of the bucket (Peer5 sends epoch milliseconds, UTC)."),
        *columns_of(
            "string",
            "Dimension {name} (with dimensions=[...]).",
            ("browser.name", "country.code", "city.name", "isp.name", "os.name", "session.page"),
        ),
        Column("http", "int64", "Bytes delivered over HTTP in the bucket."),
        Column("p2p", "int64", "Bytes delivered peer to peer in the bucket."),
        Column("played", "float64", "Milliseconds the player was playing."),
        Column("rebuffered", "float64", "Milliseconds the player was buffering."),
        Column("sessions", "float64", "Average number of sessions in the bucket (fractional)."),
    ),
)


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


def validate_interval(interval: Any) -> dt.timedelta:
    """The bucket size of ``interval``, or an error listing the documented intervals."""
    return INTERVALS[check_choice("interval", interval, list(INTERVALS))]


def validate_query(
    interval: Any,
    metrics: Any,
    filters: Mapping[str, Any] | None = None,
    dimensions: Sequence[str] | None = None,
) -> None:
    """Check every request field against the documented values, before anything is sent."""
    validate_interval(interval)
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics={metrics!r} must be a non-empty list of: {', '.join(METRICS)}.")
    check_choices("metrics", metrics, METRICS)
    if not isinstance(filters or {}, Mapping):
        raise ValueError(
            f"filters={filters!r} must be a mapping of field to values; fields: {', '.join(FIELDS)}."
        )
    if filters:
        check_choices("filters", filters, FIELDS)  # its keys
    for key, values in (filters or {}).items():
        if not isinstance(values, (str, list, tuple)) or not all(
            isinstance(v, str) for v in _as_list(values)
        ):
            raise ValueError(f"filters[{key!r}]={values!r} must be a string or a list of strings.")
    if isinstance(dimensions, str):
        raise ValueError(f"dimensions={dimensions!r} must be a list of: {', '.join(FIELDS)}.")
    if dimensions:
        check_choices("dimensions", dimensions, FIELDS)
    if dimensions and (len(dimensions) > MAX_DIMENSIONS or len(set(dimensions)) != len(dimensions)):
        raise ValueError(
            f"dimensions={list(dimensions)!r}: Peer5 splits by at most {MAX_DIMENSIONS} distinct "
            f"dimensions per query; allowed: {', '.join(FIELDS)}."
        )


def _as_list(values: str | Sequence[str]) -> list[str]:
    return [values] if isinstance(values, str) else list(values)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _serves(interval: str, start: dt.datetime, clock_now: dt.datetime) -> bool:
    """Whether ``interval`` data reaching back to ``start`` (rounded down) is within its recency limit."""
    max_age = LIMITS[interval].max_age
    return max_age is None or floor_to(start, INTERVALS[interval]) >= clock_now - max_age


def check_window(start: dt.datetime | None, end: dt.datetime | None, interval: str) -> None:
    """Refuse bounds off ``interval`` (a partial bucket); the API also needs them rounded to it."""
    step = validate_interval(interval)
    check_whole_buckets(start, end, partial(floor_to, step=step), interval, "interval")


def plan_chunks(start: dt.datetime, end: dt.datetime, interval: str, clock_now: dt.datetime) -> list[Chunk]:
    """Aligned [from, to) requests that cover [start, end) within the API's limits.

    Raises when a bound cuts a bucket, or when the window reaches further back than
    ``interval`` is served, naming the limit and the coarser intervals that would work
    (the range limit is met by splitting instead).
    """
    check_window(start, end, interval)
    step = INTERVALS[interval]
    limit = LIMITS[interval]
    if not _serves(interval, start, clock_now):
        working = [
            name for name, size in INTERVALS.items() if size > step and _serves(name, start, clock_now)
        ]
        max_age = limit.max_age or dt.timedelta(0)
        raise ValueError(
            f"Peer5 serves interval={interval!r} only within the last {max_age.days} days, but "
            f"start={start.isoformat()} is before {(clock_now - max_age).isoformat()}; "
            f"use a coarser interval: {', '.join(working)}."
        )
    chunker = BucketChunker(lambda moment: moment + step, MAX_BUCKETS_PER_REQUEST, limit.max_range)
    return list(chunker.chunks(start, end))


def bucket_keeper(chunk: Chunk, key_fields: Sequence[str]) -> Callable[[Any], bool]:
    """Whether a row of ``chunk`` (a dict, or a CSV record as a dict) is written.

    ``to`` ends the range, but whether the bucket starting at ``to`` comes back is not
    documented: it is dropped here (the next chunk or run asks for it as its ``from``).
    Any other row outside the chunk, or a (bucket, dimension values) key seen twice, would
    double or shift rows, so it fails the export.
    """
    from_ms, to_ms = _ms(chunk.start), _ms(chunk.end)
    seen: set[tuple[Any, ...]] = set()

    def keep(row: Mapping[str, Any]) -> bool:
        try:
            timestamp = int(row["timestamp"])
        except (KeyError, TypeError, ValueError):
            raise ExportIntegrityError(
                f"Peer5 returned a row whose timestamp {row.get('timestamp')!r} is not epoch milliseconds; "
                "refusing to place it in a bucket."
            ) from None
        if timestamp == to_ms:
            return False
        key = tuple(row.get(name) for name in key_fields)
        if not from_ms <= timestamp < to_ms or key in seen:
            raise ExportIntegrityError(
                f"Peer5 returned timestamp={timestamp} "
                + ("twice for the same dimension values " if key in seen else "")
                + f"for the requested range [{chunk.start.isoformat()}, {chunk.end.isoformat()}); "
                "refusing to write shifted or doubled rows."
            )
        seen.add(key)
        return True

    return keep


@dataclass(frozen=True)
class Peer5Query:
    """What to export, checked against the documented values when built (before any request).

    :param interval: bucket size, one of ``1m 5m 10m 30m 1h 3h 12h 1d 7d 14d``.
    :param metrics: metrics to export (``http``, ``p2p``, ``played``, ``rebuffered``, ``sessions``).
    :param filters: field -> value or list of values to keep.
    :param dimensions: up to two fields to split rows by (one row per bucket and value combination).
    """

    interval: str
    metrics: Sequence[str]
    filters: Mapping[str, str | Sequence[str]] | None = None
    dimensions: Sequence[str] | None = None

    def __post_init__(self) -> None:
        validate_query(self.interval, self.metrics, self.filters, self.dimensions)

    def body(self, chunk: Chunk) -> dict[str, Any]:
        """The request body for one chunk: bounds in epoch ms, then the query."""
        return {
            "from": _ms(chunk.start),
            "to": _ms(chunk.end),
            "interval": self.interval,
            "metrics": list(self.metrics),
            **({"filters": {key: _as_list(v) for key, v in self.filters.items()}} if self.filters else {}),
            **({"dimensions": list(self.dimensions)} if self.dimensions else {}),
        }

    def keeper(self, chunk: Chunk) -> Callable[[Any], bool]:
        """:func:`bucket_keeper` of ``chunk``, keyed by timestamp and the dimension values."""
        return bucket_keeper(chunk, ["timestamp", *(self.dimensions or [])])


class Peer5Hook(AnalyticsApiHook):
    """Talks to Peer5's export API.

    Connection: password = auth token.
    """

    conn_type = "peer5"
    hook_name = "Peer5"
    default_host = "https://control.peer5.com"

    def auth_headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.required_credential(self.connection.password, "auth token (password)")}

    def check_connection(self) -> None:
        today = _ms(floor_to(now(), _DAY))
        body = {"from": today - DAY_MS, "to": today, "interval": "1d", "metrics": ["sessions"]}
        self.request("POST", EXPORT_ENDPOINT, params={"format": "json"}, json=body)

    def export_rows(
        self, start: dt.datetime, end: dt.datetime, query: Peer5Query
    ) -> Iterator[list[dict[str, Any]]]:
        """[start, end) as rows: one list of row dicts per request (chunk); the window is checked first.

        Bounds must fall on ``query.interval`` boundaries (a bucket cut by the window would be
        written partial and never corrected), and the window must be within the interval's
        recency limit: both are refused before any request. Long windows at fine intervals are
        split into chunks the API accepts. A bucket is written when it starts in [start, end):
        whether or not Peer5 also returns the bucket starting at ``to``, each bucket lands
        once, within a file and across consecutive runs.

        :param start: window start (inclusive, aware).
        :param end: window end (exclusive, aware).
        :param query: what to export.
        """
        return self._json_chunks(plan_chunks(start, end, query.interval, now()), query)

    def export_csv(self, start: dt.datetime, end: dt.datetime, query: Peer5Query) -> Iterator[bytes]:
        """[start, end) as Peer5's own CSV: one bytes chunk per request, to be joined into one file.

        The same window rules and chunks as :meth:`export_rows`. The first chunk starts with
        the header; every later chunk's header must be the same bytes (else the columns would
        not line up) and is dropped. Records are passed byte for byte, parsed only to drop the
        bucket at each chunk's ``to`` and to check the rest.
        """
        return self._csv_chunks(plan_chunks(start, end, query.interval, now()), query)

    def _post(self, chunk: Chunk, query: Peer5Query, fmt: str, parse: Any) -> Any:
        body = query.body(chunk)
        return self.request("POST", EXPORT_ENDPOINT, params={"format": fmt}, json=body, parse=parse)

    def _json_chunks(self, chunks: list[Chunk], query: Peer5Query) -> Iterator[list[dict[str, Any]]]:
        for chunk in chunks:
            rows = self._post(chunk, query, "json", self._parse_json)
            yield list(filter(query.keeper(chunk), rows))

    def _parse_json(self, response: requests.Response) -> list[dict[str, Any]]:
        return series_rows(
            response, self.api_name, "POST", EXPORT_ENDPOINT, "timestamp", lambda body: not body.get("error")
        )

    def _parse_csv(self, response: requests.Response) -> bytes:
        """The CSV as sent, once it is one: a 200 with an HTML page or a JSON error is refused."""
        chunks = file_chunks(
            response,
            self.api_name,
            "POST",
            EXPORT_ENDPOINT,
            content_type="text/csv",
            start=CSV_HEADER_START,
            expected='a CSV header line starting with "timestamp"',
        )
        return b"".join(chunks)

    def _csv_chunks(self, chunks: list[Chunk], query: Peer5Query) -> Iterator[bytes]:
        """Each chunk's CSV records as sent; the header line of every chunk after the first is dropped."""
        header: bytes | None = None
        for chunk in chunks:
            content: bytes = self._post(chunk, query, "csv", self._parse_csv)
            first_line, records = _csv_records(content)
            if header is not None and first_line != header:
                raise ExportIntegrityError(
                    f"Peer5 CSV header changed between chunks ({header!r} then {first_line!r}); "
                    "the columns would not line up."
                )
            columns = next(csv.reader([first_line.decode("utf-8-sig")]))
            keep = query.keeper(chunk)
            kept = b"".join(raw for raw, values in records if keep(dict(zip(columns, values, strict=False))))
            if header is None:
                header = first_line
                yield first_line + kept
            else:
                yield kept


def _csv_records(content: bytes) -> tuple[bytes, list[tuple[bytes, list[str]]]]:
    """(header line, [(record bytes as sent, parsed values)]); a quoted field may span lines."""
    if not content.endswith(b"\n"):
        content += b"\n"
    lines = content.splitlines(keepends=True)
    reader = csv.reader(line.decode("utf-8-sig") for line in lines)
    next(reader)
    records, consumed = [], 1
    for values in reader:
        records.append((b"".join(lines[consumed : reader.line_num]), values))
        consumed = reader.line_num
    return lines[0], records
