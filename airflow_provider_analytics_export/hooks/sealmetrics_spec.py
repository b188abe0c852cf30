"""Sealmetrics request rules: what a create, estimate or stream body may hold, checked before sending.

The lists and limits are copied from the vendor's OpenAPI spec (``sealmetrics/docs``,
``static/openapi.json``; vendored as ``tests/contract/sealmetrics-openapi-exports.json``):
``ExportType``, ``ExportFormat`` and ``ExportFilters``. The package must not read the spec at
run time, so they live here as data; ``tests/contract/test_sealmetrics_spec_rules.py`` fails
when they drift from the spec. A body that breaks them fails before any request, naming the
parameter and what is allowed, instead of as a 422 after the task started; an operator's
arguments that hold no Jinja are checked already when the DAG is parsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow_provider_analytics_export.validation import check_choice, is_templated

#: ``ExportType`` of the spec.
EXPORT_TYPES: tuple[str, ...] = (
    "pages",
    "sources",
    "mediums",
    "campaigns",
    "terms",
    "countries",
    "devices",
    "browsers",
    "os",
    "conversions",
    "microconversions",
    "time_series",
    "landing_pages",
)
#: ``ExportFormat`` of the spec.
EXPORT_FORMATS: tuple[str, ...] = ("csv", "json")
#: ``ExportFilters`` of the spec: key -> (minLength, maxLength) of its string; every key also allows null.
FILTER_LENGTHS: dict[str, tuple[int, int]] = {
    "utm_source": (0, 255),
    "utm_medium": (0, 255),
    "utm_campaign": (0, 255),
    "utm_term": (0, 255),
    "utm_content": (0, 255),
    "country": (2, 2),
    "device_type": (0, 50),
    "browser": (0, 100),
    "os": (0, 100),
    "content_grouping": (0, 255),
    "conversion_type": (0, 100),
    "advanced_filters": (0, 1000),
}
FILTER_KEYS: tuple[str, ...] = tuple(FILTER_LENGTHS)
COUNTRY_HINT = ", an ISO 3166-1 alpha-2 code such as 'ES'"
#: The connection extra naming the zone whose local days ``date_from``/``date_to`` are.
TIMEZONE_EXTRA = "timezone"


def validate_export_request(
    export_type: str, export_format: str = "csv", filters: Mapping[str, Any] | None = None
) -> None:
    """Check type, format and filters against the spec (no request is sent)."""
    check_choice("export_type", export_type, EXPORT_TYPES)
    check_choice("export_format", export_format, EXPORT_FORMATS)
    if filters is None:
        return
    if not isinstance(filters, Mapping):
        raise ValueError(
            f"filters={filters!r} must be a dict of filter key to string (or None); "
            f"keys: {', '.join(FILTER_KEYS)}."
        )
    for key, value in filters.items():
        check_choice("filters key", key, FILTER_KEYS)
        if value is None:  # the spec allows null: no filter on that key
            continue
        if not isinstance(value, str):
            raise ValueError(f"filters[{key!r}]={value!r} must be a string or None.")
        shortest, longest = FILTER_LENGTHS[key]
        if not shortest <= len(value) <= longest:
            allowed = f"exactly {longest}" if shortest == longest else f"at most {longest}"
            raise ValueError(
                f"filters[{key!r}] is {len(value)} characters long; Sealmetrics allows {allowed}"
                f"{COUNTRY_HINT if key == 'country' else ''} (or None for no filter)."
            )


def validate_static(export_type: Any, export_format: Any, filters: Any) -> None:
    """Validate at DAG parse time whatever is not templated (the rest is checked after rendering).

    Filters are checked as given (a dict of documented keys to string values) unless any
    key or value holds Jinja.
    """
    validate_export_request(
        "pages" if is_templated(export_type) else export_type,
        "csv" if is_templated(export_format) else export_format,
        None if is_templated(filters) else filters,
    )


def validate_static_days(date_from: Any, date_to: Any) -> None:
    """Check at DAG parse the days given as plain values (defaults and templates: at run time)."""
    static = {
        name: value
        for name, value in (("date_from", date_from), ("date_to", date_to))
        if value not in (None, "") and not is_templated(value)
    }
    if len(static) == 2:
        export_days(static["date_from"], static["date_to"])
        return
    for name, value in static.items():
        as_day(value, name)


def export_body(
    export_type: str,
    date_from: dt.date | str,
    date_to: dt.date | str,
    export_format: str = "csv",
    filters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The validated JSON body shared by create, estimate and stream.

    A filter set to None is left out: null and absent both mean "no filter" in the spec, and
    leaving it out keeps one body per export (jobs are matched by their body).
    """
    validate_export_request(export_type, export_format, filters)
    day_from, day_to = export_days(date_from, date_to)
    return {
        "export_type": export_type,
        "format": export_format,
        "date_from": day_from.isoformat(),
        "date_to": day_to.isoformat(),
        "filters": {key: value for key, value in (filters or {}).items() if value is not None},
    }


def export_days(date_from: dt.date | str, date_to: dt.date | str) -> tuple[dt.date, dt.date]:
    """``date_from``/``date_to`` as inclusive days, in order (the API takes whole days)."""
    day_from, day_to = as_day(date_from, "date_from"), as_day(date_to, "date_to")
    if day_from > day_to:
        raise ValueError(f"date_from={day_from} is after date_to={day_to}; both are inclusive days.")
    return day_from, day_to


def as_day(value: dt.date | str, name: str) -> dt.date:
    """A date from a date, datetime or ``YYYY-MM-DD`` string; an error naming ``name`` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a date; use YYYY-MM-DD.") from None


def local_days(start: dt.datetime, end: dt.datetime, zone: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """[start, end) as the inclusive local days ``date_from``/``date_to`` of the account's zone.

    The API only takes whole local days; a bound that is not local midnight (an hourly
    schedule, a daily timetable in another zone) would export whole days again and again,
    so it is refused before any request.
    """
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    for name, moment in (("start", local_start), ("end", local_end)):
        if moment.timetz().replace(tzinfo=None) != dt.time(0):
            raise ValueError(
                f"Sealmetrics exports whole days in the account's time zone {zone}: window {name}="
                f"{moment.isoformat()} is not midnight there, so [start, end) is not whole days and "
                "each run would export entire days again. Schedule daily in that zone, e.g. "
                f"CronDataIntervalTimetable('@daily', timezone='{zone}'), or set the connection extra "
                f"{TIMEZONE_EXTRA!r} to the account's time zone."
            )
    return local_start.date(), local_end.date() - dt.timedelta(days=1)


def same_export(job: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Whether ``job`` is an export of exactly ``body`` (type, format, days and filters)."""

    def filters(value: Any) -> dict[str, Any]:
        return {k: v for k, v in (value or {}).items() if v is not None} if isinstance(value, Mapping) else {}

    return (
        all(job.get(key) == body.get(key) for key in ("export_type", "date_from", "date_to"))
        and job.get("format", "csv") == body.get("format", "csv")
        and filters(job.get("filters")) == filters(body.get("filters"))
    )
