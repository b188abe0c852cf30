"""OpenPanel export API: GET with client id/secret headers, 100 requests per 10 s per client.

Written against the open-source server (Openpanel-dev/openpanel, ``apps/api`` export router
and controller, ``packages/db`` event and chart services), not only its doc page: query
values are parsed (digit strings become numbers, JSON is decoded, lists are repeated keys),
events come newest first, and chart dates are instants bucketed in the organization's zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_analytics_export.exceptions import ExportIntegrityError, InvalidRequestError
from airflow_provider_analytics_export.files.schemas import OPENPANEL_EVENTS
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.paging.ledger import PageLedger
from airflow_provider_analytics_export.paging.newest_first import NewestFirstCursor
from airflow_provider_analytics_export.paging.paginators import Page, PageNumberPaginator
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders, RequestRules
from airflow_provider_analytics_export.validation import (
    as_name_list,
    check_choice,
    check_choices,
    check_int_range,
)
from airflow_provider_analytics_export.windows import covering_dates, in_window, resolve_window, to_datetime

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import requests

EVENTS_ENDPOINT = "/export/events"
CHARTS_ENDPOINT = "/export/charts"
MAX_PAGE_SIZE = 1000
MAX_CONCURRENCY = 32
ID_FIELD = "id"
TIME_FIELD = "createdAt"
#: Related data joined per event: the profile and the event's metadata.
RELATED: tuple[str, ...] = ("profile", "meta")
#: Every column ``/export/events`` can return, in export order: the event columns
#: (``getEventList`` as mapped by ``transformEvent``), ``importedAt``, then :data:`RELATED`.
#: Declared once, with their types, as ``files.schemas.OPENPANEL_EVENTS``.
#: The server sends only some unless ``includes`` names the rest, so the hook always names
#: the columns it exports. (``duration`` is selected by the server but never mapped into the
#: answer, so it is not offered.)
INCLUDES: tuple[str, ...] = tuple(OPENPANEL_EVENTS.names)
#: The event's own columns (what ``fields`` may name besides ``importedAt``).
EVENT_FIELDS: tuple[str, ...] = tuple(name for name in INCLUDES if name not in ("importedAt", *RELATED))
#: Columns an export always has: the window and the de-duplication need them.
REQUIRED_FIELDS: tuple[str, ...] = ("id", "createdAt")
SEGMENTS: tuple[str, ...] = (
    "event",
    "user",
    "session",
    "user_average",
    "one_event_per_user",
    "property_sum",
    "property_average",
    "property_min",
    "property_max",
)
FILTER_OPERATORS: tuple[str, ...] = (
    "is",
    "isNot",
    "contains",
    "doesNotContain",
    "startsWith",
    "endsWith",
    "regex",
    "isNull",
    "isNotNull",
)
BREAKDOWNS: tuple[str, ...] = (
    "country",
    "region",
    "city",
    "device",
    "browser",
    "os",
    "referrer",
    "referrer_name",
    "referrer_type",
    "path",
    "origin",
    "name",
)
#: Dot-notation prefixes the docs allow for properties in filters and breakdowns.
PROPERTY_PREFIXES: tuple[str, ...] = ("properties.", "profile.properties.")
#: How the server parses each query value (``parse-zod-query-string.ts``).
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
INTERVALS: tuple[str, ...] = ("minute", "hour", "day", "week", "month")
DATE_RANGES: tuple[str, ...] = (
    "30min",
    "lastHour",
    "last24h",
    "today",
    "yesterday",
    "7d",
    "30d",
    "3m",
    "6m",
    "12m",
    "monthToDate",
    "lastMonth",
    "yearToDate",
    "lastYear",
)
_EVENT_KEYS = ("name", "filters", "segment", "property")


@dataclasses.dataclass(frozen=True)
class EventQuery:
    """The ``/export/events`` arguments of one export, checked once (by :meth:`build`).

    :param events: event names to keep; None: all.
    :param columns: the columns exported, in :data:`INCLUDES` order.
    :param page_size: events per request.
    :param max_concurrency: pages fetched at once after the first (past days only).
    :param profile_id: only this profile's events (and its devices' anonymous ones).
    """

    events: list[str] | None
    columns: list[str]
    page_size: int
    max_concurrency: int
    profile_id: str | None = None

    @classmethod
    def build(
        cls,
        events: Iterable[str] | str | None = None,
        includes: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int = 4,
        fields: Iterable[str] | str | None = None,
        profile_id: str | None = None,
    ) -> EventQuery:
        """Check the arguments; the columns are ``fields`` (default: every event column) plus
        what ``includes`` names, always with ``id`` and ``createdAt``, related data last."""
        check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
        check_int_range("max_concurrency", max_concurrency, 1, MAX_CONCURRENCY)
        named = check_choices("fields", fields, (*EVENT_FIELDS, "importedAt"))
        extra = check_choices("includes", includes, INCLUDES) or []
        wanted = {*REQUIRED_FIELDS, *(EVENT_FIELDS if named is None else named), *extra}
        columns = [name for name in INCLUDES if name in wanted]
        return cls(as_name_list("events", events), columns, page_size, max_concurrency, profile_id or None)


def query_literal(value: str) -> str:
    """``value`` as the server will read it back as this same string.

    The server turns digit strings into numbers, ``true``/``false`` into booleans and valid
    JSON into its value (so a digits-only profile id fails validation); such a value is sent
    as a JSON string literal, which it decodes to the text itself.
    """
    try:
        json.loads(value)
    except ValueError:
        decodes = False
    else:
        decodes = True
    return json.dumps(value) if decodes or _NUMBER.match(value) else value


def _json_list(name: str, value: Any) -> list[Any]:
    """A list given as such or as JSON text (what a rendered template produces)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not valid JSON; give a list of objects.") from None
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f'{name}={value!r} must be a list of objects, e.g. [{{"name": "screen_view"}}].')
    return value


def _check_property_name(name: str, value: Any, allowed: Sequence[str] = ()) -> None:
    if not isinstance(value, str) or not (value in allowed or value.startswith(PROPERTY_PREFIXES)):
        options = ", ".join([*allowed, *(prefix + "<name>" for prefix in PROPERTY_PREFIXES)])
        raise ValueError(f"{name}={value!r} is not supported; use one of: {options}.")


def _validate_chart_event(index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    where = f"events[{index}]"
    unknown = [key for key in event if key not in _EVENT_KEYS]
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; allowed: {', '.join(_EVENT_KEYS)}.")
    if not isinstance(event.get("name"), str) or not event["name"]:
        raise ValueError(f"{where}.name={event.get('name')!r} is required: the event name to chart.")
    segment = check_choice(f"{where}.segment", event.get("segment", "event"), SEGMENTS)
    if segment.startswith("property_"):
        _check_property_name(f"{where}.property (required for segment {segment!r})", event.get("property"))
    filters = _json_list(f"{where}.filters", event.get("filters", []))
    for number, item in enumerate(filters):
        here = f"{where}.filters[{number}]"
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ValueError(f"{here}.name={item.get('name')!r} is required: the property to filter on.")
        check_choice(f"{here}.operator", item.get("operator"), FILTER_OPERATORS)
        if not isinstance(item.get("value"), list):
            raise ValueError(f"{here}.value={item.get('value')!r} must be a list of values ([] for isNull).")
    return dict(event)


@dataclasses.dataclass(frozen=True)
class ChartQuery:
    """The ``/export/charts`` arguments of one chart, checked once (by :meth:`build`).

    :param events: event configurations: name, filters, segment, property.
    :param breakdowns: dimensions to split each event by, e.g. ``[{"name": "country"}]``.
    :param interval: bucket size: minute, hour, day, week or month.
    :param date_range: a predefined range such as ``7d`` (instead of a window).
    :param previous: also ask for the previous period's values.
    """

    events: list[dict[str, Any]]
    breakdowns: list[dict[str, Any]]
    interval: str = "day"
    date_range: str | None = None
    previous: bool = False

    @classmethod
    def build(
        cls,
        events: Any,
        breakdowns: Any = None,
        interval: str = "day",
        date_range: str | None = None,
        previous: bool = False,
    ) -> ChartQuery:
        """Check the arguments against the documented lists (events and breakdowns may be JSON text)."""
        checked = [_validate_chart_event(i, event) for i, event in enumerate(_json_list("events", events))]
        if not checked:
            raise ValueError('events=[] is empty: give at least one event, e.g. [{"name": "screen_view"}].')
        dims = _json_list("breakdowns", breakdowns or [])
        for i, dim in enumerate(dims):
            _check_property_name(f"breakdowns[{i}].name", dim.get("name"), BREAKDOWNS)
        check_choice("interval", interval, INTERVALS)
        if date_range is not None:
            check_choice("date_range", date_range, DATE_RANGES)
        return cls(checked, [dict(dim) for dim in dims], interval, date_range, previous)

    @property
    def breakdown_names(self) -> list[str]:
        """The breakdowns' names, as the ``breakdown_<name>`` columns use them."""
        return [str(dim["name"]) for dim in self.breakdowns]

    def params(self, window: tuple[dt.datetime, dt.datetime] | None) -> dict[str, str]:
        """The query (without ``projectId``): ``date_range``, else ``window``, else the server's default.

        The server keeps ``created_at >= startDate AND created_at <= endDate`` and reads a
        date-only value as midnight, so the window is sent as its two instants: every bucket
        of [start, end) is complete, and the bucket at ``end`` that also comes back is dropped
        by :func:`chart_rows`.
        """
        params = {
            "events": json.dumps(self.events),
            "interval": self.interval,
            "previous": "true" if self.previous else "false",
        }
        if self.breakdowns:
            params["breakdowns"] = json.dumps(self.breakdowns)
        if self.date_range is not None:
            params["range"] = self.date_range
        elif window is not None:
            params["startDate"], params["endDate"] = _instant(window[0]), _instant(window[1])
        return params


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
            local = moment.astimezone(zone)
            aligned, where = local == _bucket_start(local, interval), f" in {zone.key}"
        else:
            step = 60 if interval == "minute" else 900
            aligned, where = moment.timestamp() % step == 0, " in any time zone"
        if not aligned:
            raise ValueError(
                f"{name}={moment.isoformat()} does not fall on a {interval} boundary{where}, so a "
                f"{interval} bucket would straddle the window: align the window (or schedule) to the "
                f"{interval} of the organization's time zone, or choose a finer interval."
            )


def _bucket_start(local: dt.datetime, interval: str) -> dt.datetime:
    """Start of the bucket holding ``local`` (``toStartOf<interval>``, weeks from Monday)."""
    floored = local.replace(second=0, microsecond=0)
    if interval == "minute":
        return floored
    floored = floored.replace(minute=0)
    if interval == "hour":
        return floored
    floored = floored.replace(hour=0)
    if interval == "week":
        return floored - dt.timedelta(days=floored.weekday())
    return floored.replace(day=1) if interval == "month" else floored


def window_buckets(start: dt.datetime, end: dt.datetime, interval: str, zone: ZoneInfo) -> list[dt.datetime]:
    """The bucket starts of an aligned [start, end) in the organization's zone."""
    out: list[dt.datetime] = []
    local = start.astimezone(zone)
    while local < end:
        out.append(local)
        if interval in ("minute", "hour"):
            step = dt.timedelta(minutes=1 if interval == "minute" else 60)
            local = (local.astimezone(dt.timezone.utc) + step).astimezone(zone)
        elif interval == "month":
            year, month = local.year + local.month // 12, local.month % 12 + 1
            local = local.replace(year=year, month=month, day=1)
        else:
            day = local.date() + dt.timedelta(days=7 if interval == "week" else 1)
            local = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return out


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
    missing = [b for b in window_buckets(*window, interval, zone) if b not in got]
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


class OpenPanelHook(AnalyticsApiHook):
    """Talks to OpenPanel's ``/export`` API.

    Connection: login = client id, password = client secret (a ``read`` or ``root``
    client), extras ``project_id`` = the default project (a ``read`` client may leave it
    empty: it reads its own project) and ``timezone`` = the organization's time zone, in which
    the server cuts chart buckets (default UTC). The 100-requests-per-10-s limit is shared by
    every hook on the same client in this process, and the server's ``x-ratelimit-*`` headers
    pause every caller of the client when its window is used up (e.g. by another process).

    Event dates are whole UTC days on the server; the exports here ask for the days covering
    [start, end) and keep rows by their own ``createdAt``.
    """

    conn_type = "openpanel"
    hook_name = "OpenPanel"
    default_host = "https://api.openpanel.dev"
    request_limit: ClassVar[RequestRules | None] = RequestRules(max_calls=100, per_seconds=10.0)
    #: @fastify/rate-limit's headers (reset = seconds left in the fixed window). The reserve
    #: covers the requests the default ``max_concurrency`` of 4 may already have in flight.
    rate_limit_headers = RateLimitHeaders(
        remaining="x-ratelimit-remaining", reset="x-ratelimit-reset", reset_is="seconds", reserve=4
    )

    def auth_headers(self) -> dict[str, str]:
        return {
            "openpanel-client-id": self.required_credential(self.connection.login, "client id (login)"),
            "openpanel-client-secret": self.required_credential(
                self.connection.password, "client secret (password)"
            ),
        }

    def project_id(self, project_id: str | None = None) -> str:
        """The given project id, else the connection's default ``project_id``."""
        return self.from_extra(project_id, "project_id")

    @property
    def timezone(self) -> ZoneInfo:
        """The organization's time zone (connection extra ``timezone``, default UTC)."""
        zone: ZoneInfo = self.extra("timezone")
        return zone

    # -- events -----------------------------------------------------------------------
    def _events_page(self, params: dict[str, Any]) -> Page:
        """One page of the listing, refused unless it is the page asked for."""
        meta, data = self.request("GET", EVENTS_ENDPOINT, params=params, parse=self._parse_page)
        asked = params["page"]
        if int(meta.get("current", asked)) != asked:
            raise ExportIntegrityError(
                f"OpenPanel answered page {meta.get('current')} when asked for page {asked}."
            )
        return Page(data, int(meta["totalCount"]), int(meta["pages"]) if meta.get("pages") else None)

    def _parse_page(self, response: requests.Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``meta`` (with ``totalCount``) and ``data`` of a page; a body without them fails at once."""
        field = self.body_reader(response, "GET", EVENTS_ENDPOINT)
        field("meta", "totalCount")
        data = field("data", kind=list)
        # One pass in C over the rows; only a row lacking a field goes through field() for its error.
        complete = [isinstance(row, dict) and ID_FIELD in row and TIME_FIELD in row for row in data]
        if not all(complete):
            index = complete.index(False)
            field("data", index, ID_FIELD)
            field("data", index, TIME_FIELD)
        return field("meta", kind=dict), data

    def iter_event_pages(
        self,
        project_id: str | None,
        start: dt.datetime | str,
        end: dt.datetime | str,
        events: Iterable[str] | str | None = None,
        profile_id: str | None = None,
        includes: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int = 4,
        fields: Iterable[str] | str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the events of [start, end) page by page (see :meth:`iter_events` and :meth:`event_pages`)."""
        query = EventQuery.build(events, includes, page_size, max_concurrency, fields, profile_id)
        yield from self.event_pages(query, resolve_window(start, end), project_id)

    def event_pages(
        self, query: EventQuery, window: tuple[dt.datetime, dt.datetime], project_id: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the events of the window page by page, for arguments already checked.

        Days before today (UTC) no longer change: the first page reveals how many pages
        there are, the rest are fetched on ``max_concurrency`` threads, and every row counts
        towards ``meta.totalCount``, which must not change. When the days include today
        (live traffic lands on top of the newest-first listing) or with ``profile_id``
        (the listing holds more rows than the count), pages are read one after another by
        :class:`NewestFirstCursor` instead.
        """
        first, last = covering_dates(*window)
        params: dict[str, Any] = {
            "projectId": query_literal(self.project_id(project_id)),
            "start": first.isoformat(),
            "end": last.isoformat(),
            # Repeated keys: every server version reads them as a list ("a,b" is one name).
            "includes": query.columns,
        }
        if query.events:
            params["event"] = [query_literal(name) for name in query.events]
        if query.profile_id:
            params["profileId"] = query_literal(query.profile_id)
        now = dt.datetime.now(dt.timezone.utc)
        if window[1] > now:
            # New events go on top of the listing, where a reader past page 1 never looks.
            raise ValueError(
                f"end={window[1].isoformat()} is in the future: events of the window are still "
                "arriving, so no export of it can be complete. Export windows that are over."
            )
        paginator = PageNumberPaginator(query.page_size)
        if query.profile_id or last >= now.date():
            pages = self._newest_first(paginator, params, window, query.profile_id)
        else:
            pages = self._all_pages(paginator, params, window, query.max_concurrency)
        yield from self._asked_columns(pages, query.columns)

    @staticmethod
    def _asked_columns(
        pages: Iterator[list[dict[str, Any]]], columns: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Drop columns the server sends though not asked for (its defaults); keep the rest as sent.

        No nulls added, a field unknown to us kept (and the common page, where nothing is to
        drop, costs one set union, not a dict per row).
        """
        unasked = frozenset(INCLUDES) - set(columns)
        for rows in pages:
            drop = unasked & set().union(*rows)
            yield [{k: v for k, v in row.items() if k not in drop} for row in rows] if drop else rows

    def _all_pages(
        self,
        paginator: PageNumberPaginator,
        params: dict[str, Any],
        window: tuple[dt.datetime, dt.datetime],
        max_concurrency: int,
    ) -> Iterator[list[dict[str, Any]]]:
        """Past days: every page, concurrently, checked by :class:`PageLedger` against the count."""
        ledger = PageLedger(self.api_name, ID_FIELD, self.log, "OpenPanel events", paginator.page_size)
        pages = paginator.counted(lambda paging: self._events_page({**params, **paging}), max_concurrency)
        for rows in ledger.check(pages):
            yield rows_in_window(rows, window)

    def _newest_first(
        self,
        paginator: PageNumberPaginator,
        params: dict[str, Any],
        window: tuple[dt.datetime, dt.datetime],
        profile_id: str | None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages one after another until the listing ends or passes the window start.

        ``meta.pages`` is not trusted: with ``profile_id`` the listing also holds the
        profile's anonymous device events, which ``totalCount`` does not count. When the days
        are all past, the count must still match: the rows with ``profileId`` equal to
        ``profile_id`` (all rows without one) read over the whole listing.
        """
        today = dt.datetime.now(dt.timezone.utc).date()
        settled = dt.date.fromisoformat(params["end"]) < today
        cursor = NewestFirstCursor(
            self.api_name, ID_FIELD, TIME_FIELD, window, _created, self.log, "OpenPanel events"
        )
        counted = total = 0
        pages = paginator.until(
            lambda paging: self._events_page({**params, **paging}),
            last=lambda page: not settled and cursor.past_window(page.rows),
        )
        for number, page in pages:
            total = page.total
            if settled and cursor.first_total is not None and total != cursor.first_total:
                raise ExportIntegrityError(
                    f"OpenPanel total changed from {cursor.first_total:,} to {total:,} at page {number} "
                    "for days that are over: the data changed during the export. Re-run the task."
                )
            kept = cursor.accept(number, page.rows, total)
            counted += sum(
                1 for row in cursor.new if profile_id is None or row.get("profileId") == profile_id
            )
            yield kept
        if settled and counted != total:
            raise ExportIntegrityError(
                f"OpenPanel reported {total:,} events but {counted:,} arrived"
                f"{' for profile ' + repr(profile_id) if profile_id else ''}: the listing and the count "
                "disagree. Nothing was written; re-run the task."
            )
        cursor.progress.finish()

    def iter_events(
        self,
        project_id: str | None,
        start: dt.datetime | str,
        end: dt.datetime | str,
        events: Iterable[str] | str | None = None,
        profile_id: str | None = None,
        includes: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int = 4,
        fields: Iterable[str] | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every event created in [start, end), each exactly once, newest first.

        OpenPanel's dates are inclusive UTC days, so the request covers the dates of the
        window and rows whose ``createdAt`` falls outside [start, end) are dropped: hourly
        windows neither double nor lose rows. Every row has the same columns (missing ones
        None), whatever the server sends by default. Memory holds the pages in flight.

        :param project_id: the project; default: the connection extra ``project_id``.
        :param start: window start (inclusive): datetime or ISO string.
        :param end: window end (exclusive).
        :param events: event name(s) to keep; default: all.
        :param profile_id: only this profile's events (and the anonymous events of its
            devices, which the server stitches in).
        :param includes: more columns: ``profile``, ``meta`` or event fields.
        :param page_size: events per request, 1..1000.
        :param max_concurrency: pages fetched at once after the first (past days only).
        :param fields: the event columns to export; default: all of :data:`EVENT_FIELDS`.
        """
        for rows in self.iter_event_pages(
            project_id, start, end, events, profile_id, includes, page_size, max_concurrency, fields
        ):
            yield from rows

    # -- charts -----------------------------------------------------------------------
    def get_chart(
        self,
        project_id: str | None,
        events: Sequence[Mapping[str, Any]] | str,
        breakdowns: Sequence[Mapping[str, Any]] | str | None = None,
        interval: str = "day",
        date_range: str | None = None,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        previous: bool = False,
    ) -> dict[str, Any]:
        """Fetch one ``/export/charts`` response (series of points per event and breakdown value).

        :param project_id: the project; default: the connection extra ``project_id``.
        :param events: event configurations: name, filters, segment, property.
        :param breakdowns: dimensions to split each event by, e.g. ``[{"name": "country"}]``.
        :param interval: bucket size: minute, hour, day, week or month.
        :param date_range: a predefined range such as ``7d`` (instead of start/end).
        :param start: window start (inclusive).
        :param end: window end (exclusive).
        :param previous: also return the previous period's values for comparison.
        """
        query = ChartQuery.build(events, breakdowns, interval, date_range, previous)
        check_date_range_exclusive(date_range, start, end)
        if (start is None) != (end is None):
            raise ValueError("start and end go together: give both (or date_range=).")
        window = None
        if start is not None and end is not None:
            window = to_datetime(start, "start"), to_datetime(end, "end")
        return self.fetch_chart(query, window, project_id)

    def fetch_chart(
        self, query: ChartQuery, window: tuple[dt.datetime, dt.datetime] | None, project_id: str | None = None
    ) -> dict[str, Any]:
        """One ``/export/charts`` response for arguments already checked (see :meth:`ChartQuery.params`).

        :param window: the chart's [start, end); None with ``date_range`` (the two are exclusive).
        """
        params = {"projectId": query_literal(self.project_id(project_id)), **query.params(window)}
        return self.request("GET", CHARTS_ENDPOINT, params=params, parse=self._parse_chart)

    def _parse_chart(self, response: requests.Response) -> dict[str, Any]:
        """The chart body; a series without a ``data`` list or a point without ``date`` fails at once.

        Checked here, where API, endpoint and status are known, so :func:`chart_rows` can
        trust the shape instead of turning a malformed series into a silently empty file.
        """
        field = self.body_reader(response, "GET", CHARTS_ENDPOINT)
        for number in range(len(field("series", kind=list))):
            for index in range(len(field("series", number, "data", kind=list))):
                field("series", number, "data", index, "date")
        return field(kind=dict)

    def check_connection(self) -> None:
        """One one-row listing of today; without a default project, the client's own project.

        A ``read`` client may omit ``projectId`` (it gets its own project); a ``root`` client
        then answers 400 "projectId is required", which still proves the credentials work.
        """
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        params: dict[str, Any] = {"start": today, "end": today, "page": 1, "limit": 1}
        project = self.extra("project_id")
        if project:
            self.request("GET", EVENTS_ENDPOINT, params={"projectId": query_literal(project), **params})
            return
        try:
            self.request("GET", EVENTS_ENDPOINT, params=params)
        except InvalidRequestError as exc:
            if not (exc.status == 400 and "projectId is required" in exc.api_message):
                raise


def check_date_range_exclusive(date_range: str | None, start: Any, end: Any) -> None:
    """A chart covers either a predefined ``date_range`` or [start, end), never both."""
    if date_range is not None and (start is not None or end is not None):
        raise ValueError(f"date_range={date_range!r} and start/end are exclusive: give one or the other.")


def _instant(moment: dt.datetime) -> str:
    """An ISO instant with its offset: the server reads it as that moment in any zone."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(value: Any) -> dt.datetime:
    """An event's ``createdAt``; the server's ISO text is parsed directly (once per row, so cheap)."""
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass  # to_datetime names the field and the value
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return to_datetime(value, TIME_FIELD)


def rows_in_window(rows: list[Any], window: tuple[dt.datetime, dt.datetime]) -> list[dict[str, Any]]:
    """The rows created in [start, end), read by their own timestamps.

    When every ``createdAt`` is UTC text of one shape (``...Z``, what the server's JSON dates
    are), text order is time order: if the earliest and the latest are inside the window, all
    rows are, and only those two are parsed. Anything else is parsed row by row.
    """
    stamps = [row[TIME_FIELD] for row in rows]
    shape = len(stamps[0]) if stamps else 0
    uniform = all(type(stamp) is str and stamp[-1:] == "Z" and len(stamp) == shape for stamp in stamps)
    if stamps and uniform and all(in_window(_created(edge), *window) for edge in (min(stamps), max(stamps))):
        return list(rows)
    return [row for row, stamp in zip(rows, stamps, strict=True) if in_window(_created(stamp), *window)]
