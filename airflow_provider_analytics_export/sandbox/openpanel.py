"""Fake OpenPanel export API (/export/events, /export/charts) with a per-client sliding-window limit."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .credentials import CREDENTIALS
from .data import (
    OPENPANEL_BREAKDOWN_VALUES,
    OPENPANEL_PROJECTS,
    openpanel_buckets,
    openpanel_chart,
    openpanel_page,
)
from .server import ApiError, Request, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

SEGMENTS = (
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
OPERATORS = (
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
INTERVALS = ("minute", "hour", "day", "week", "month")
RANGES = (
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
INCLUDES = ("profile", "meta")
MAX_CHART_POINTS = 50_000
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def new_state() -> dict[str, Any]:
    return {"windows": {}}


def _bad(details: list[dict[str, Any]]) -> ApiError:
    return ApiError(400, {"error": "Bad Request", "message": "Invalid query parameters", "details": details})


def _client(req: Request) -> str:
    return req.headers.get("openpanel-client-id") or ""


def _window(sbx: SandboxServer, client: str, now: float) -> list[float]:
    windows: dict[str, list[float]] = sbx.state["openpanel"]["windows"]
    stamps = windows.setdefault(client, [])
    cutoff = now - float(sbx.config.openpanel_rate_window)
    stamps[:] = [t for t in stamps if t > cutoff]
    return stamps


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """X-RateLimit-* on every response so clients can pace themselves."""
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return {}
    now = time.monotonic()
    with sbx.lock:
        stamps = _window(sbx, _client(req), now)
        remaining = max(0, limit - len(stamps))
        reset = math.ceil(min(stamps) + sbx.config.openpanel_rate_window - now) if stamps else 0
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(max(0, reset)),
    }


def _rate_limit(sbx: SandboxServer, client: str) -> None:
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return
    now = time.monotonic()
    with sbx.lock:
        stamps = _window(sbx, client, now)
        if len(stamps) >= limit:
            oldest = sorted(stamps)[len(stamps) - limit]
            retry = max(1, math.ceil(oldest + sbx.config.openpanel_rate_window - now))
            raise ApiError(
                429,
                {"error": "Too Many Requests", "message": "Rate limit exceeded"},
                {"Retry-After": str(retry)},
            )
        stamps.append(now)


def _multi(req: Request, name: str, details: list[dict[str, Any]]) -> list[str] | None:
    """A param given repeated, comma-separated or as a JSON array string."""
    raw = req.query.get(name) or req.query.get(f"{name}[]")
    if not raw:
        return None
    out: list[str] = []
    for value in raw:
        value = value.strip()
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError:
                details.append({"path": [name], "message": "Invalid JSON array"})
                continue
            if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
                details.append({"path": [name], "message": "Expected string or array of strings"})
                continue
            out.extend(parsed)
        else:
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _int_param(
    req: Request, name: str, default: int, lo: int, hi: int | None, details: list[dict[str, Any]]
) -> int:
    raw = req.q(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        details.append({"path": [name], "message": "Expected number, received string"})
        return default
    if value < lo:
        details.append({"path": [name], "message": f"Number must be greater than or equal to {lo}"})
    elif hi is not None and value > hi:
        details.append({"path": [name], "message": f"Number must be less than or equal to {hi}"})
    return value


def _date_param(req: Request, name: str, details: list[dict[str, Any]]) -> date | None:
    raw = req.q(name)
    if raw is None or raw == "":
        return None
    if _DATE_RE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    details.append({"path": [name], "message": "Invalid date, expected YYYY-MM-DD"})
    return None


def resolve_range(name: str, now: float) -> tuple[datetime, datetime]:
    """Predefined range -> [start, end) in UTC, relative to the sandbox clock."""
    now_dt = datetime.fromtimestamp(now, tz=timezone.utc)
    today = now_dt.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    month1 = today.replace(day=1)
    year1 = today.replace(month=1, day=1)
    if name == "30min":
        return now_dt - timedelta(minutes=30), now_dt
    if name == "lastHour":
        return now_dt - timedelta(hours=1), now_dt
    if name == "today":
        return today, tomorrow
    if name == "yesterday":
        return today - timedelta(days=1), today
    if name == "7d":
        return today - timedelta(days=6), tomorrow
    if name == "30d":
        return today - timedelta(days=29), tomorrow
    if name == "6m":
        return today - timedelta(days=182), tomorrow
    if name == "12m":
        return today - timedelta(days=365), tomorrow
    if name == "monthToDate":
        return month1, tomorrow
    if name == "lastMonth":
        prev = (month1 - timedelta(days=1)).replace(day=1)
        return prev, month1
    if name == "yearToDate":
        return year1, tomorrow
    if name == "lastYear":
        return year1.replace(year=year1.year - 1), year1
    raise ValueError(name)


def _project(req: Request, details: list[dict[str, Any]]) -> str:
    project = req.q("projectId") or req.q("project_id")
    if not project:
        raise _bad([{"path": ["projectId"], "message": "Required"}])
    if project == "proj-forbidden":
        raise ApiError(403, {"error": "Forbidden", "message": "You do not have access to this project"})
    if project not in OPENPANEL_PROJECTS:
        raise ApiError(404, {"error": "Not Found", "message": "Project not found"})
    return project


def _range_param(req: Request, details: list[dict[str, Any]]) -> str | None:
    rng = req.q("range")
    if rng and rng not in RANGES:
        details.append({"path": ["range"], "message": f"Invalid enum value. Expected {' | '.join(RANGES)}"})
        return None
    return rng or None


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "GET":
        raise ApiError(405, {"error": "Method Not Allowed", "message": "Only GET is supported"})
    creds = CREDENTIALS["openpanel"]
    if (
        _client(req) != creds["client_id"]
        or req.headers.get("openpanel-client-secret") != creds["client_secret"]
    ):
        raise ApiError(401, {"error": "Unauthorized", "message": "Invalid client credentials"})
    _rate_limit(sbx, _client(req))
    if req.path == "/export/events":
        return _events(sbx, req)
    if req.path == "/export/charts":
        return _charts(sbx, req)
    raise ApiError(404, {"error": "Not Found", "message": "Route not found"})


def _events(sbx: SandboxServer, req: Request) -> Response:
    details: list[dict[str, Any]] = []
    project = _project(req, details)
    start = _date_param(req, "start", details)
    end = _date_param(req, "end", details)
    rng = _range_param(req, details)
    page = _int_param(req, "page", 1, 1, None, details)
    limit = _int_param(req, "limit", 50, 1, 1000, details)
    events = _multi(req, "event", details)
    includes = _multi(req, "includes", details) or []
    for i, inc in enumerate(includes):
        if inc not in INCLUDES:
            details.append(
                {"path": ["includes", i], "message": "Invalid enum value. Expected 'profile' | 'meta'"}
            )
    if details:
        raise _bad(details)
    now = sbx.config.clock()
    if start is None and end is None:
        s_dt, e_dt = resolve_range(rng or "30d", now)
        start, end = s_dt.date(), (e_dt - timedelta(microseconds=1)).date()
    elif end is None:
        end = datetime.fromtimestamp(now, tz=timezone.utc).date()
    elif start is None:
        start = end - timedelta(days=29)
    assert start is not None and end is not None
    if start > end:
        raise _bad([{"path": ["end"], "message": "end must be on or after start"}])
    total, data = openpanel_page(
        sbx.config, project, start, end, events, req.q("profileId") or None, includes, page, limit
    )
    meta = {"count": len(data), "totalCount": total, "pages": math.ceil(total / limit), "current": page}
    return json_response(200, {"meta": meta, "data": data})


def _json_param(req: Request, name: str, details: list[dict[str, Any]], required: bool) -> list[Any] | None:
    raw = req.q(name)
    if raw is None or raw == "":
        if required:
            details.append({"path": [name], "message": "Required"})
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        details.append({"path": [name], "message": "Invalid JSON"})
        return None
    if not isinstance(value, list):
        details.append({"path": [name], "message": "Expected array, received " + type(value).__name__})
        return None
    return value


def _validate_chart_events(raw: list[Any], details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not raw:
        details.append({"path": ["events"], "message": "Array must contain at least 1 element(s)"})
    events = []
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict):
            details.append({"path": ["events", i], "message": "Expected object"})
            continue
        name = ev.get("name")
        if not isinstance(name, str) or not name:
            details.append({"path": ["events", i, "name"], "message": "Required"})
        segment = ev.get("segment", "event")
        if segment not in SEGMENTS:
            details.append(
                {
                    "path": ["events", i, "segment"],
                    "message": f"Invalid enum value. Expected {' | '.join(SEGMENTS)}",
                }
            )
        elif segment.startswith("property_") and not isinstance(ev.get("property"), str):
            details.append({"path": ["events", i, "property"], "message": "Required for property segments"})
        filters = ev.get("filters", [])
        if not isinstance(filters, list):
            details.append({"path": ["events", i, "filters"], "message": "Expected array"})
            filters = []
        for j, f in enumerate(filters):
            base = ["events", i, "filters", j]
            if not isinstance(f, dict):
                details.append({"path": base, "message": "Expected object"})
                continue
            if not isinstance(f.get("name"), str) or not f.get("name"):
                details.append({"path": [*base, "name"], "message": "Required"})
            if f.get("operator") not in OPERATORS:
                details.append(
                    {
                        "path": [*base, "operator"],
                        "message": f"Invalid enum value. Expected {' | '.join(OPERATORS)}",
                    }
                )
            if not isinstance(f.get("value"), list):
                details.append({"path": [*base, "value"], "message": "Expected array"})
        events.append({"name": name, "segment": segment, "property": ev.get("property"), "filters": filters})
    return events


def _charts(sbx: SandboxServer, req: Request) -> Response:
    details: list[dict[str, Any]] = []
    project = _project(req, details)
    raw_events = _json_param(req, "events", details, required=True)
    events = _validate_chart_events(raw_events, details) if raw_events is not None else []
    breakdowns = _json_param(req, "breakdowns", details, required=False) or []
    for i, b in enumerate(breakdowns):
        name = b.get("name") if isinstance(b, dict) else None
        if not isinstance(name, str) or not (
            name in OPENPANEL_BREAKDOWN_VALUES or name.startswith(("properties.", "profile."))
        ):
            details.append({"path": ["breakdowns", i, "name"], "message": "Invalid breakdown dimension"})
    interval = req.q("interval") or "day"
    if interval not in INTERVALS:
        details.append(
            {"path": ["interval"], "message": f"Invalid enum value. Expected {' | '.join(INTERVALS)}"}
        )
    rng = _range_param(req, details)
    start = _date_param(req, "startDate", details)
    end = _date_param(req, "endDate", details)
    if (start is None) != (end is None) and not any(
        d["path"][0] in ("startDate", "endDate") for d in details
    ):
        details.append(
            {
                "path": ["startDate" if start is None else "endDate"],
                "message": "startDate and endDate must be given together",
            }
        )
    prev_raw = (req.q("previous") or "false").lower()
    if prev_raw not in ("true", "false"):
        details.append({"path": ["previous"], "message": "Expected boolean"})
    if details:
        raise _bad(details)
    if start is not None and end is not None:
        if start > end:
            raise _bad([{"path": ["endDate"], "message": "endDate must be on or after startDate"}])
        s_dt = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        e_dt = datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(days=1)
    else:
        s_dt, e_dt = resolve_range(rng or "30d", sbx.config.clock())
    n_series = len(events)
    for b in breakdowns:
        n_series *= len(OPENPANEL_BREAKDOWN_VALUES.get(b["name"], (1, 2, 3)))
    if n_series * len(openpanel_buckets(s_dt, e_dt, interval)) > MAX_CHART_POINTS:
        raise _bad(
            [{"path": ["interval"], "message": "Too many data points; use a larger interval or range"}]
        )
    body = openpanel_chart(sbx.config, project, events, breakdowns, interval, s_dt, e_dt, prev_raw == "true")
    return json_response(200, body)
