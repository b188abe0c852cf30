"""OpenPanel export API: GET with client id/secret headers, 100 requests per 10 s per client."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_analytics_export.exceptions import ExportIntegrityError, InvalidRequestError
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.pagination import PageLedger, fetch_in_order
from airflow_provider_analytics_export.validation import (
    as_name_list,
    check_choice,
    check_choices,
    check_int_range,
)
from airflow_provider_analytics_export.windows import covering_dates, in_window, to_datetime

if TYPE_CHECKING:
    import requests

EVENTS_ENDPOINT = "/export/events"
CHARTS_ENDPOINT = "/export/charts"
MAX_PAGE_SIZE = 1000
MAX_CONCURRENCY = 32
ID_FIELD = "id"
INCLUDES: tuple[str, ...] = ("profile", "meta")
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
BREAKDOWNS: tuple[str, ...] = ("country", "region", "city", "device", "browser", "os", "referrer", "path")
#: Dot-notation prefixes the docs allow for properties in filters and breakdowns.
PROPERTY_PREFIXES: tuple[str, ...] = ("properties.", "profile.properties.")
INTERVALS: tuple[str, ...] = ("minute", "hour", "day", "week", "month")
DATE_RANGES: tuple[str, ...] = (
    "30min",
    "lastHour",
    "today",
    "yesterday",
    "7d",
    "30d",
    "6m",
    "12m",
    "monthToDate",
    "lastMonth",
    "yearToDate",
    "lastYear",
)
_EVENT_KEYS = ("name", "filters", "segment", "property")
_INTERVAL_STEPS = {
    "minute": dt.timedelta(minutes=1),
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=1),
    "month": dt.timedelta(days=1),
}


def validate_event_args(
    events: Iterable[str] | str | None,
    includes: Iterable[str] | str | None,
    page_size: int,
    max_concurrency: int = 1,
) -> tuple[list[str] | None, list[str] | None]:
    """Check the ``/export/events`` arguments; return (events, includes) as lists."""
    check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
    check_int_range("max_concurrency", max_concurrency, 1, MAX_CONCURRENCY)
    return as_name_list("events", events), check_choices("includes", includes, INCLUDES)


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


def validate_chart_args(
    events: Any, breakdowns: Any, interval: str, date_range: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Check ``/export/charts`` arguments against the documented lists; return (events, breakdowns)."""
    checked = [_validate_chart_event(i, event) for i, event in enumerate(_json_list("events", events))]
    if not checked:
        raise ValueError('events=[] is empty: give at least one event, e.g. [{"name": "screen_view"}].')
    dims = _json_list("breakdowns", breakdowns or [])
    for i, dim in enumerate(dims):
        _check_property_name(f"breakdowns[{i}].name", dim.get("name"), BREAKDOWNS)
    check_choice("interval", interval, INTERVALS)
    if date_range is not None:
        check_choice("date_range", date_range, DATE_RANGES)
    return checked, [dict(dim) for dim in dims]


def check_chart_window(start: dt.datetime | None, end: dt.datetime | None, interval: str) -> None:
    """A chart bucket must lie wholly inside or outside [start, end), else its count spans both.

    A bound given as None (not known yet, e.g. templated at DAG parse) is not checked.
    """
    step = _INTERVAL_STEPS[check_choice("interval", interval, INTERVALS)].total_seconds()
    for name, moment in (("start", start), ("end", end)):
        if moment is None:
            continue
        aligned = moment.timestamp() % step == 0
        if interval == "week":
            aligned = aligned and moment.weekday() == 0
        elif interval == "month":
            aligned = aligned and moment.day == 1
        if not aligned:
            raise ValueError(
                f"{name}={moment.isoformat()} does not fall on a {interval} boundary, so a {interval} "
                f"bucket would straddle the window: align the window (or schedule) to the {interval}, "
                "or choose a finer interval."
            )


def chart_rows(
    chart: Mapping[str, Any],
    breakdowns: Sequence[Mapping[str, Any]],
    previous: bool,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per (series, date): series names, breakdown values, count (and previous value/change).

    With ``window``, points whose bucket starts outside [start, end) are dropped. ``chart`` is
    what :meth:`OpenPanelHook.get_chart` returns: its series, data and dates are checked there.
    """
    for series in chart["series"]:
        names = list(series.get("names", []))
        labels = {
            f"breakdown_{dim['name']}": value for dim, value in zip(breakdowns, names[1:], strict=False)
        }
        for point in series["data"]:
            if window and not in_window(to_datetime(point["date"], "date"), *window):
                continue
            row = {
                "series_id": series.get("id"),
                "event": series.get("event", {}).get("name", names[0] if names else None),
                "names": names,
                **labels,
                "date": point["date"],
                "count": point.get("count"),
            }
            if previous:
                prior = point.get("previous") or {}
                row["previous_value"] = prior.get("value")
                row["previous_change"] = prior.get("change")
            yield row


class OpenPanelHook(AnalyticsApiHook):
    """Talks to OpenPanel's ``/export`` API.

    Connection: login = client id, password = client secret (a ``read`` or ``root``
    client), extra ``project_id`` = the default project. The 100-requests-per-10-s limit is
    shared by every hook on the same client in this process.

    Dates: OpenPanel takes whole, inclusive days, interpreted in the project's time zone;
    the exports here assume projects set to UTC and cut rows to the exact [start, end).

    :param openpanel_conn_id: the Airflow connection id (``openpanel_default``).
    """

    conn_name_attr = "openpanel_conn_id"
    default_conn_name = "openpanel_default"
    conn_type = "openpanel"
    hook_name = "OpenPanel"
    api_name = "OpenPanel"
    default_host = "https://api.openpanel.dev"
    request_limit: ClassVar[tuple[int | None, int | None, float] | None] = (None, 100, 10.0)

    def __init__(self, openpanel_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=openpanel_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {
            "openpanel-client-id": self.secret(self.connection.login, "client id (login)"),
            "openpanel-client-secret": self.secret(self.connection.password, "client secret (password)"),
        }

    def project_id(self, project_id: str | None = None) -> str:
        """The given project id, else the connection's default ``project_id``."""
        return self.from_extra(project_id, "project_id")

    # -- events -----------------------------------------------------------------------
    def _events_page(self, params: dict[str, Any], page: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        meta, data = self.request(
            "GET", EVENTS_ENDPOINT, params={**params, "page": page}, parse=self._parse_page
        )
        if int(meta.get("current", page)) != page:
            raise ExportIntegrityError(
                f"OpenPanel answered page {meta.get('current')} when asked for page {page}."
            )
        return meta, data

    def _parse_page(self, response: requests.Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``meta`` (with ``totalCount``) and ``data`` of a page; a body without them fails at once."""
        field = self.fields(response, "GET", EVENTS_ENDPOINT)
        field("meta", "totalCount")
        return field("meta", kind=dict), field("data", kind=list)

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
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the events of [start, end) page by page, in page order (see :meth:`iter_events`).

        The first page reveals how many pages there are; the rest are fetched on
        ``max_concurrency`` threads, paced by the shared 100-per-10-s limit. Every page's
        rows count towards ``meta.totalCount`` before rows outside the window are dropped.
        """
        names, extra = validate_event_args(events, includes, page_size, max_concurrency)
        window = to_datetime(start, "start"), to_datetime(end, "end")
        if window[0] >= window[1]:
            raise ValueError(f"Empty window: start={window[0].isoformat()} is not before end.")
        first, last = covering_dates(*window)
        params: dict[str, Any] = {
            "projectId": self.project_id(project_id),
            "start": first.isoformat(),
            "end": last.isoformat(),
            "limit": page_size,
        }
        if names:
            params["event"] = ",".join(names)
        if profile_id:
            params["profileId"] = profile_id
        if extra:
            params["includes"] = ",".join(extra)
        ledger = PageLedger(self.api_name, ID_FIELD, self.log, "OpenPanel events")
        meta, data = self._events_page(params, 1)
        total = int(meta["totalCount"])
        pages = int(meta.get("pages") or math.ceil(total / page_size))
        yield _in_window(ledger.accept(1, data, total, pages), window)
        fetched = fetch_in_order(lambda n: self._events_page(params, n), range(2, pages + 1), max_concurrency)
        for number, (meta, data) in enumerate(fetched, start=2):
            yield _in_window(ledger.accept(number, data, int(meta["totalCount"]), pages), window)
        ledger.finish()

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
    ) -> Iterator[dict[str, Any]]:
        """Yield every event created in [start, end), each exactly once, oldest page first.

        OpenPanel's dates are inclusive days, so the request covers the UTC dates of the
        window and rows whose ``createdAt`` falls outside [start, end) are dropped: hourly
        windows neither double nor lose rows. Memory holds the pages in flight.

        :param project_id: the project; default: the connection extra ``project_id``.
        :param start: window start (inclusive): datetime or ISO string.
        :param end: window end (exclusive).
        :param events: event name(s) to keep; default: all.
        :param profile_id: only this profile's events.
        :param includes: extra data per event: ``profile`` and/or ``meta``.
        :param page_size: events per request, 1..1000.
        :param max_concurrency: pages fetched at once after the first.
        """
        for rows in self.iter_event_pages(
            project_id, start, end, events, profile_id, includes, page_size, max_concurrency
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
        :param start: first day (inclusive); with ``end``, sent as startDate/endDate.
        :param end: end of the window (exclusive); its covering date is sent as endDate.
        :param previous: also return the previous period's values for comparison.
        """
        checked, dims = validate_chart_args(events, breakdowns, interval, date_range)
        params: dict[str, Any] = {
            "projectId": self.project_id(project_id),
            "events": json.dumps(checked),
            "interval": interval,
            "previous": "true" if previous else "false",
        }
        if dims:
            params["breakdowns"] = json.dumps(dims)
        params.update(_chart_dates(date_range, start, end))
        return self.request("GET", CHARTS_ENDPOINT, params=params, parse=self._parse_chart)

    def _parse_chart(self, response: requests.Response) -> dict[str, Any]:
        """The chart body; a series without a ``data`` list or a point without ``date`` fails at once.

        Checked here, where API, endpoint and status are known, so :func:`chart_rows` can
        trust the shape instead of turning a malformed series into a silently empty file.
        """
        field = self.fields(response, "GET", CHARTS_ENDPOINT)
        for number in range(len(field("series", kind=list))):
            for index in range(len(field("series", number, "data", kind=list))):
                field("series", number, "data", index, "date")
        return field(kind=dict)

    def check_connection(self) -> None:
        today = dt.date.today().isoformat()
        params = {"start": today, "end": today, "page": 1, "limit": 1}
        try:
            self.request("GET", EVENTS_ENDPOINT, params={"projectId": self.project_id(), **params})
        except ValueError:
            # No default project: any answer but 401 proves the credentials are accepted.
            try:
                self.request("GET", EVENTS_ENDPOINT, params={"projectId": "connection-test", **params})
            except InvalidRequestError as exc:
                if exc.status != 404:
                    raise


def check_date_range_exclusive(date_range: str | None, start: Any, end: Any) -> None:
    """A chart covers either a predefined ``date_range`` or [start, end), never both."""
    if date_range is not None and (start is not None or end is not None):
        raise ValueError(f"date_range={date_range!r} and start/end are exclusive: give one or the other.")


def _chart_dates(date_range: str | None, start: Any, end: Any) -> dict[str, str]:
    check_date_range_exclusive(date_range, start, end)
    if date_range is not None:
        return {"range": date_range}
    if start is None and end is None:
        return {}
    if start is None or end is None:
        raise ValueError("start and end go together: give both (or date_range=).")
    first, last = covering_dates(to_datetime(start, "start"), to_datetime(end, "end"))
    return {"startDate": first.isoformat(), "endDate": last.isoformat()}


def _in_window(rows: list[Any], window: tuple[dt.datetime, dt.datetime]) -> list[dict[str, Any]]:
    return [row for row in rows if in_window(to_datetime(row["createdAt"], "createdAt"), *window)]
