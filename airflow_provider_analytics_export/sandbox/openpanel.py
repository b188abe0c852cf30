"""Fake OpenPanel export API (/export/events, /export/charts) as the open-source server behaves.

Read from Openpanel-dev/openpanel: ``apps/api/src/routes/export.router.ts`` (rate limit, auth,
query parsing), ``apps/api/src/utils/parse-zod-query-string.ts`` (digits become numbers,
``true``/``false`` booleans, JSON is parsed), ``apps/api/src/controllers/export.controller.ts``
(zod schemas, clamped ``limit``/``page``, project rules, chart dates), ``packages/db`` (event list
and count, chart SQL and formatting) and ``apps/api/src/app.ts`` (error bodies).
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .credentials import CREDENTIALS
from .data import OPENPANEL_PROJECTS, openpanel_chart, openpanel_page
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
    "group",
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
    "gt",
    "lt",
    "gte",
    "lte",
    "isFromCohort",
    "isNotFromCohort",
)
INTERVALS = ("minute", "day", "hour", "week", "month")
RANGES = (
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
    "custom",
)
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RATE_MESSAGE = "You have exceeded the rate limit for this endpoint."


def new_state() -> dict[str, Any]:
    return {"windows": {}, "live": None}


# -- rate limit: @fastify/rate-limit, 100 per 10 s, fixed window, keyed on the client id -------------
def _key(req: Request) -> str:
    return req.headers.get("openpanel-client-id") or req.headers.get("x-forwarded-for") or "ip"


def _count(sbx: SandboxServer, req: Request) -> tuple[int, float]:
    """Count this request in its client's window (before authentication); (count, seconds to reset)."""
    window = float(sbx.config.openpanel_rate_window)
    now = time.monotonic()
    with sbx.lock:
        windows: dict[str, list[float]] = sbx.state["openpanel"]["windows"]
        slot = windows.get(_key(req))
        if slot is None or now >= slot[0] + window:
            slot = windows[_key(req)] = [now, 0]
        slot[1] += 1
        return int(slot[1]), slot[0] + window - now


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """x-ratelimit-* on every response, as the plugin sends them (reset in whole seconds)."""
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return {}
    window = float(sbx.config.openpanel_rate_window)
    now = time.monotonic()
    with sbx.lock:
        slot = sbx.state["openpanel"]["windows"].get(_key(req)) or [now, 0]
    reset = max(0, math.ceil(slot[0] + window - now))
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(max(0, limit - int(slot[1]))),
        "x-ratelimit-reset": str(reset),
    }


def _rate_limit(sbx: SandboxServer, req: Request) -> None:
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return
    count, left = _count(sbx, req)
    if count > limit:
        body = {"status": 429, "error": "Too Many Requests", "message": _RATE_MESSAGE}
        raise ApiError(429, body, {"retry-after": str(max(1, math.ceil(left)))})


# -- errors, auth, query parsing ---------------------------------------------------------------------
def _http_error(status: int, message: str) -> ApiError:
    """``HttpError`` through the app's error handler: ``error`` is undefined, so absent."""
    return ApiError(status, {"status": status, "message": message})


def _invalid(path: str, message: str) -> ApiError:
    """A zod validation failure as Fastify reports it (FST_ERR_VALIDATION)."""
    return ApiError(400, {"status": 400, "error": "FastifyError", "message": f"querystring/{path} {message}"})


def _client(req: Request) -> dict[str, Any]:
    """``validateExportRequest``: 401 ``{"error": "Unauthorized", "message": "Export: ..."}``."""
    creds = CREDENTIALS["openpanel"]
    client_id = req.headers.get("openpanel-client-id") or ""
    secret = req.headers.get("openpanel-client-secret") or ""
    clients = {
        creds["client_id"]: (creds["client_secret"], None),
        creds["read_client_id"]: (creds["read_client_secret"], creds["project_id"]),
    }

    def unauthorized(message: str) -> ApiError:
        return ApiError(401, {"error": "Unauthorized", "message": f"Export: {message}"})

    if not _UUID.match(client_id):
        raise unauthorized("Client ID must be a valid UUIDv4")
    if client_id not in clients:
        raise unauthorized("Invalid client id")
    if secret != clients[client_id][0]:
        raise unauthorized("Invalid client secret")
    project = clients[client_id][1]
    return {"type": "read" if project else "root", "projectId": project}


def _scalar(value: str) -> Any:
    """``parseScalar``: digit strings become numbers, true/false booleans, valid JSON is parsed."""
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    if value in ("true", "false"):
        return value == "true"
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return value if parsed is None else parsed


def _query(req: Request) -> dict[str, Any]:
    """Repeated keys are a list, each value parsed; ``a,b`` stays one string."""
    out: dict[str, Any] = {}
    for key, values in req.query.items():
        parsed = [_scalar(v) for v in values]
        out[key] = parsed if len(parsed) > 1 else parsed[0]
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "string"


def _string(q: dict[str, Any], name: str) -> str | None:
    value = q.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(name, f"Expected string, received {_kind(value)}")


def _strings(q: dict[str, Any], name: str, split: bool) -> list[str] | None:
    value = q.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()] if split else [value]
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(f"{name}/{i}", f"Expected string, received {_kind(item)}")
        return value
    raise _invalid(name, f"Expected string, received {_kind(value)}")


def _number(q: dict[str, Any], name: str, default: int) -> int:
    """``z.coerce.number()``: anything numeric; then the controller clamps it."""
    value = q.get(name, default)
    try:
        number = float(value) if not isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        raise _invalid(name, "Expected number, received nan") from None
    if math.isnan(number):
        raise _invalid(name, "Expected number, received nan")
    return int(number)


def _project(q: dict[str, Any], client: dict[str, Any]) -> str:
    """``getProjectId``: a read client may omit the project and may not name another one."""
    project = _string(q, "projectId") or _string(q, "project_id")
    if project:
        if client["type"] == "read" and client["projectId"] != project:
            raise _http_error(403, "You do not have access to this project")
        if project not in OPENPANEL_PROJECTS:
            raise _http_error(404, "Project not found")
        return project
    if client["projectId"]:
        return str(client["projectId"])
    raise _http_error(400, "project_id or projectId is required")


def _js_date(value: Any) -> datetime:
    """``new Date(value)``: a date alone is UTC midnight; an invalid one makes the SQL builder throw."""
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(500, {"status": 500, "error": "RangeError", "message": "Invalid time value"}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def handle(sbx: SandboxServer, req: Request) -> Response:
    _rate_limit(sbx, req)
    if req.method != "GET":
        raise ApiError(404, {"message": f"Route {req.method}:{req.path} not found", "error": "Not Found"})
    client = _client(req)
    if req.path == "/export/events":
        return _events(sbx, req, client)
    if req.path == "/export/charts":
        return _charts(sbx, req, client)
    raise ApiError(
        404, {"message": f"Route GET:{req.path} not found", "error": "Not Found", "statusCode": 404}
    )


def _live_since(sbx: SandboxServer) -> int | None:
    """When live traffic started (ms), remembered from the first request that saw it switched on."""
    rate = float(sbx.config.openpanel_live_events_per_second)
    with sbx.lock:
        live = sbx.state["openpanel"]["live"]
        if rate <= 0:
            sbx.state["openpanel"]["live"] = None
            return None
        if live is None or live[0] != rate:
            live = sbx.state["openpanel"]["live"] = (rate, int(sbx.config.clock() * 1000))
        return int(live[1])


def _events(sbx: SandboxServer, req: Request, client: dict[str, Any]) -> Response:
    q = _query(req)
    project = _project(q, client)
    profile_id = _string(q, "profileId")
    events = _strings(q, "event", split=False)
    includes = _strings(q, "includes", split=True) or []
    if q.get("filters") not in (None, ""):
        raise _http_error(400, "filters are not implemented by the sandbox")
    take = max(min(_number(q, "limit", 50), 1000), 1)
    page = max(_number(q, "page", 1), 1)
    start, end = q.get("start"), q.get("end")
    if start not in (None, "") and end not in (None, ""):
        first, last = (
            _js_date(start).astimezone(timezone.utc).date(),
            _js_date(end).astimezone(timezone.utc).date(),
        )
    else:
        # No (or one) bound: the real server has no date filter past page 1; the sandbox has no
        # unbounded history, so it serves the last 30 days.
        last = datetime.fromtimestamp(sbx.config.clock(), tz=timezone.utc).date()
        first = last - timedelta(days=29)
    total, data = openpanel_page(
        sbx.config, project, first, last, events, profile_id, includes, page, take, _live_since(sbx)
    )
    meta = {"count": len(data), "totalCount": total, "pages": math.ceil(total / take), "current": page}
    return json_response(200, {"meta": meta, "data": data})


# -- charts ------------------------------------------------------------------------------------------
def _json_list(q: dict[str, Any], name: str) -> list[Any] | None:
    value = q.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid(name, f"Expected array, received {_kind(value)}")
    return value


def _chart_events(raw: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict):
            raise _invalid(f"events/{i}", f"Expected object, received {_kind(ev)}")
        if not isinstance(ev.get("name"), str):
            raise _invalid(f"events/{i}/name", "Required")
        segment = ev.get("segment", "event")
        if segment not in SEGMENTS:
            raise _invalid(f"events/{i}/segment", f"Invalid enum value. Expected {' | '.join(SEGMENTS)}")
        filters = ev.get("filters", [])
        if not isinstance(filters, list):
            raise _invalid(f"events/{i}/filters", f"Expected array, received {_kind(filters)}")
        for j, item in enumerate(filters):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _invalid(f"events/{i}/filters/{j}/name", "Required")
            if item.get("operator") not in OPERATORS:
                raise _invalid(f"events/{i}/filters/{j}/operator", "Invalid enum value")
            if not isinstance(item.get("value"), list):
                raise _invalid(f"events/{i}/filters/{j}/value", "Expected array")
        out.append(
            {"name": ev["name"], "segment": segment, "property": ev.get("property"), "filters": filters}
        )
    return out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            500, {"status": 500, "error": "Error", "message": f"Invalid time zone {name}"}
        ) from None


def range_window(name: str, now: float, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``getDatesFromRange`` in the organization's zone (ends are 'end of day + 1 ms', whole seconds)."""
    local = datetime.fromtimestamp(now, tz=zone)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    minute = local.replace(second=0, microsecond=0)
    if name in ("30min", "lastHour", "last24h"):
        back = {"30min": timedelta(minutes=30), "lastHour": timedelta(hours=1), "last24h": timedelta(days=1)}
        return minute - back[name], minute + timedelta(seconds=59)
    if name == "today":
        return today, tomorrow - timedelta(seconds=1)
    if name == "yesterday":
        return today - timedelta(days=1), today - timedelta(seconds=1)
    month1 = today.replace(day=1)
    if name == "lastMonth":
        prev = (month1 - timedelta(days=1)).replace(day=1)
        return prev, month1
    if name == "lastYear":
        year1 = today.replace(month=1, day=1)
        return year1.replace(year=year1.year - 1), year1 - timedelta(seconds=1)
    starts = {
        "7d": today - timedelta(days=7),
        "3m": today - timedelta(days=91),
        "6m": today - timedelta(days=182),
        "12m": (today - timedelta(days=365)).replace(day=1),
        "monthToDate": month1,
        "yearToDate": today.replace(month=1, day=1),
    }
    return starts.get(name, today - timedelta(days=30)), tomorrow


def _chart_bound(value: Any, zone: ZoneInfo) -> datetime:
    """``DateTime.fromISO(x).setZone(tz)`` to seconds: naive text is the server's zone (UTC)."""
    return _js_date(value).astimezone(zone).replace(microsecond=0)


def _charts(sbx: SandboxServer, req: Request, client: dict[str, Any]) -> Response:
    q = _query(req)
    project = _project(q, client)
    raw = _json_list(q, "series")
    if raw is None:
        raw = _json_list(q, "events") or []
    events = _chart_events(raw)
    breakdowns = _json_list(q, "breakdowns") or []
    for i, b in enumerate(breakdowns):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise _invalid(f"breakdowns/{i}/name", "Required")
    interval = q.get("interval", "day")
    if interval not in INTERVALS:
        raise _invalid("interval", f"Invalid enum value. Expected {' | '.join(INTERVALS)}")
    rng = q.get("range", "30d")
    if rng not in RANGES:
        raise _invalid("range", f"Invalid enum value. Expected {' | '.join(RANGES)}")
    previous = q.get("previous", False)
    if not isinstance(previous, bool):
        raise _invalid("previous", f"Expected boolean, received {_kind(previous)}")
    zone = _zone(sbx.config.openpanel_timezone)
    start_raw, end_raw = q.get("startDate"), q.get("endDate")
    for name, value in (("startDate", start_raw), ("endDate", end_raw)):
        if value is not None and not isinstance(value, str):
            raise _invalid(name, f"Expected string, received {_kind(value)}")
    start = _chart_bound(start_raw, zone) if start_raw else None
    end = _chart_bound(end_raw, zone) if end_raw else None
    if start is None or end is None:
        # getChartStartEndDate: a start alone is ignored; an end alone keeps the range's start.
        range_start, range_end = range_window(rng, sbx.config.clock(), zone)
        start, end = (range_start, end) if start is None and end is not None else (range_start, range_end)
    cap = sbx.config.openpanel_subscription_chart_end
    if cap is not None:  # getOrganizationSubscriptionChartEndDate
        end = min(end, datetime.fromtimestamp(float(cap), tz=zone).replace(microsecond=0))
    body = openpanel_chart(
        sbx.config, project, events, breakdowns, interval, start, end, previous, sbx.config.openpanel_timezone
    )
    return json_response(200, body)
