"""OpenPanel's query rules: which arguments ``/export/events`` and ``/export/charts`` accept, and how.

Read from the server (``parse-zod-query-string.ts``, the export controller's zod schemas):
every query value is parsed (digit strings become numbers, JSON is decoded, lists are
repeated keys), so the values are checked and spelled here once, before any request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_analytics_export.files.schemas import Column, Schema, columns_of
from airflow_provider_analytics_export.validation import (
    as_name_list,
    check_choice,
    check_choices,
    check_int_range,
)
from airflow_provider_analytics_export.windows import BUCKET_UNITS

MAX_PAGE_SIZE = 1000
MAX_CONCURRENCY = 32
#: OpenPanel ``/export/events``: every column the server can return (``transformEvent``), in
#: export order; :data:`INCLUDES`/:data:`EVENT_FIELDS` are read from here (one list).
#: ``fields``/``includes`` select a subset (``id``, ``createdAt`` always).
OPENPANEL_EVENTS = Schema(
    "openpanel_events",
    (
        *columns_of(
            "string", "Event {name}.", ("id", "name", "deviceId", "profileId", "projectId", "sessionId")
        ),
        Column("createdAt", "timestamp", "When the event happened (ISO-8601 UTC)."),
        *columns_of(
            "string",
            "{name} of the event.",
            ("path", "origin", "referrer", "referrerName", "referrerType", "country", "region", "city"),
        ),
        Column("longitude", "float64", "Longitude detected from the IP."),
        Column("latitude", "float64", "Latitude detected from the IP."),
        *columns_of(
            "string",
            "{name} of the client.",
            (
                "os",
                "osVersion",
                "browser",
                "browserVersion",
                "device",
                "brand",
                "model",
                "sdkName",
                "sdkVersion",
            ),
        ),
        Column("revenue", "float64", "Revenue recorded with the event."),
        Column("groups", "json", "Groups of the event (JSON list)."),
        Column("properties", "json", "Event properties (JSON object; OpenPanel sends every value as text)."),
        Column("importedAt", "timestamp", "When the event was imported, if it was (includes=importedAt)."),
        Column("profile", "json", "The event's profile (includes=profile)."),
        Column("meta", "json", "The event's metadata, only for events that have one (includes=meta)."),
    ),
)


#: Related data joined per event: the profile and the event's metadata.
RELATED: tuple[str, ...] = ("profile", "meta")
#: Every column ``/export/events`` can return, in export order: the event columns
#: (``getEventList`` as mapped by ``transformEvent``), ``importedAt``, then :data:`RELATED`.
#: Declared once, with their types, as :data:`OPENPANEL_EVENTS`.
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
#: Chart bucket sizes (the server's ``toStartOf<interval>`` in the organization's zone).
INTERVALS: tuple[str, ...] = BUCKET_UNITS
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


def check_date_range_exclusive(date_range: str | None, start: Any, end: Any) -> None:
    """A chart covers either a predefined ``date_range`` or [start, end), never both."""
    if date_range is not None and (start is not None or end is not None):
        raise ValueError(f"date_range={date_range!r} and start/end are exclusive: give one or the other.")


def _instant(moment: dt.datetime) -> str:
    """An ISO instant with its offset: the server reads it as that moment in any zone."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
