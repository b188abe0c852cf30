"""OpenPanel export API: GET with client id/secret headers, 100 requests per 10 s per client.

Written against the open-source server (Openpanel-dev/openpanel, ``apps/api`` export router
and controller, ``packages/db`` event and chart services), not only its doc page: query
values are parsed (digit strings become numbers, JSON is decoded, lists are repeated keys),
events come newest first, and chart dates are instants bucketed in the organization's zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_analytics_export.exceptions import ExportIntegrityError, InvalidRequestError
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.hooks.openpanel_listing import ID_FIELD, TIME_FIELD, EventListing
from airflow_provider_analytics_export.hooks.openpanel_query import (
    INCLUDES,
    MAX_PAGE_SIZE,
    ChartQuery,
    EventQuery,
    check_date_range_exclusive,
    query_literal,
)
from airflow_provider_analytics_export.paging.paginators import Page, PageNumberPaginator
from airflow_provider_analytics_export.paging.parallel import read_ahead
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders, RequestRules
from airflow_provider_analytics_export.windows import covering_dates, resolve_window, to_datetime

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import requests

EVENTS_ENDPOINT = "/export/events"
CHARTS_ENDPOINT = "/export/charts"
#: ``country`` of an event whose country was not resolved: ClickHouse's ``FixedString(2)`` default,
#: two NUL characters (not ""). Exported as null.
NO_COUNTRY = "\x00\x00"


class OpenPanelHook(AnalyticsApiHook):
    """Talks to OpenPanel's ``/export`` API.

    Connection: login = client id, password = client secret (a ``read`` or ``root``
    client), extras ``project_id`` = the default project (a ``read`` client may leave it
    empty: it reads its own project) and ``timezone`` = the organization's time zone, in which
    the server cuts chart buckets (default UTC). The 100-requests-per-10-s limit is shared by
    every hook on the same client on this machine (or on the Redis the ``limit_backend`` extra
    names), and the server's ``x-ratelimit-*`` headers pause every caller of the client when
    its window is used up by someone else (e.g. another machine).

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

        Days before today (UTC) no longer change. A window of whole days: the first page
        reveals how many pages there are, the rest are fetched on ``max_concurrency`` threads,
        and every row counts towards ``meta.totalCount``, which must not change. A shorter
        window (an hour) is read from the page holding its end (:meth:`EventListing.window_pages`), not
        from the top of the day; so is any window of days that include today (live traffic
        lands on top of the listing: pages are read one after another). With ``profile_id``
        (the listing holds more rows than the count) the listing is read from its top by
        :meth:`EventListing.from_the_top`.

        Pages are read and checked on a thread (:func:`read_ahead`) a page ahead of the caller:
        read one after another, a page then costs its request, not its request plus the
        caller's writing. Which page comes next still follows from the pages before.
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
        days = _midnight(first), min(now, _midnight(last + dt.timedelta(days=1)))
        settled = last < now.date()

        def fetch(paging: dict[str, int]) -> Page:
            return self._events_page({**params, **paging})

        listing = EventListing(fetch, paginator, window, self.log)
        if query.profile_id:
            pages = listing.from_the_top(query.profile_id, settled)
        elif settled and window == days:
            pages = listing.all_pages(query.max_concurrency)
        else:
            pages = listing.window_pages(days, settled)
        yield from read_ahead(self._as_exported(pages, query.columns))

    @staticmethod
    def _as_exported(
        pages: Iterator[list[dict[str, Any]]], columns: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Each row as sent, less the columns the server sends unasked (its defaults), NUL country null.

        No nulls added, a field unknown to us kept. The one value changed is :data:`NO_COUNTRY`
        (ClickHouse's ``FixedString(2)`` for "not resolved"): it becomes null in every format,
        so no file holds raw NUL bytes and all formats agree. The common page, with nothing to
        drop or change, costs one set union and one scan, not a dict per row.
        """
        unasked = frozenset(INCLUDES) - set(columns)
        for rows in pages:
            drop = unasked & set().union(*rows)
            if drop:
                rows = [{k: v for k, v in row.items() if k not in drop} for row in rows]
            if any(row.get("country") == NO_COUNTRY for row in rows):
                rows = [{**row, "country": None} if row.get("country") == NO_COUNTRY else row for row in rows]
            yield rows

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


def _midnight(day: dt.date) -> dt.datetime:
    """The UTC start of ``day`` (OpenPanel's dates are UTC days)."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
