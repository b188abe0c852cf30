"""Fake Peer5 POST /v1/export with the documented interval rounding, range and dimension rules."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from .credentials import CREDENTIALS
from .data import DAY_MS, PEER5_DIMENSION_VALUES, PEER5_INTERVALS_MS, PEER5_METRICS, peer5_csv, peer5_rows
from .server import ErrorResponse, Request, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

HOUR_MS = 3_600_000
#: interval -> (max to-from in ms or None, max age of `from` in ms or None)
RANGE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "1m": (6 * HOUR_MS, 7 * DAY_MS),
    "5m": (6 * HOUR_MS, 7 * DAY_MS),
    "10m": (7 * DAY_MS, 14 * DAY_MS),
    "30m": (7 * DAY_MS, 14 * DAY_MS),
    "1h": (None, 14 * DAY_MS),
    "3h": (None, 14 * DAY_MS),
    "12h": (None, 14 * DAY_MS),
    "1d": (None, None),
    "7d": (None, None),
    "14d": (None, None),
}
FILTER_KEYS = tuple(PEER5_DIMENSION_VALUES)


def _bad(message: str) -> ErrorResponse:
    return ErrorResponse(400, {"error": True, "message": message})


def new_state() -> dict[str, Any]:
    return {"sent": []}


def guard(sbx: SandboxServer, req: Request) -> None:
    """The per-minute limit (number not documented): over it, this and every later request get a 429
    while the limit stays crossed, since rejected requests count too. No Retry-After is sent."""
    limit = sbx.config.peer5_rate_limit
    if limit is None:
        return
    now = time.time()
    with sbx.lock:
        sent: list[float] = sbx.state["peer5"]["sent"]
        sent[:] = [moment for moment in sent if now - moment < sbx.config.peer5_rate_window]
        sent.append(now)
        crossed = len(sent) > limit
    if crossed:
        raise ErrorResponse(429, {"error": True, "message": "Too many requests, please slow down"})


def _timestamp(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise _bad(f"'{name}' is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(f"'{name}' must be a number (UTC epoch milliseconds)")
    if value != int(value) or value < 0:
        raise _bad(f"'{name}' must be a non-negative integer number of epoch milliseconds")
    return int(value)


def validate(body: Any, now_ms: int) -> dict[str, Any]:
    """Validate an export body exactly per the docs; returns the normalised query."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    interval = body.get("interval")
    if interval is None:
        raise _bad("'interval' is required")
    if interval not in PEER5_INTERVALS_MS:
        raise _bad(f"'interval' must be one of {', '.join(PEER5_INTERVALS_MS)}")
    frm = _timestamp(body, "from")
    to = _timestamp(body, "to")
    step = PEER5_INTERVALS_MS[interval]
    for name, value in (("from", frm), ("to", to)):
        if value % step:
            raise _bad(f"'{name}' must be rounded to the requested interval ({interval})")
    if frm >= to:
        raise _bad("'from' must be before 'to'")
    max_span, max_age = RANGE_LIMITS[interval]
    if max_span is not None and to - frm > max_span:
        raise _bad(f"Interval {interval} is limited to a query range of up to {max_span // HOUR_MS} hours")
    if max_age is not None and frm < now_ms - max_age:
        raise _bad(f"Interval {interval} is limited to queries within the last {max_age // DAY_MS} days")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _bad("'metrics' is required and must be a non-empty array")
    for m in metrics:
        if m not in PEER5_METRICS:
            raise _bad(f"Unknown metric {m!r}; available: {', '.join(PEER5_METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise _bad("'metrics' must not contain duplicates")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise _bad("'filters' must be an object")
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise _bad(f"Unknown filter key {key!r}; available: {', '.join(FILTER_KEYS)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _bad(f"Filter {key!r} must be an array of strings")
    dimensions = body.get("dimensions") or []
    if not isinstance(dimensions, list):
        raise _bad("'dimensions' must be an array")
    if len(dimensions) > 2:
        raise _bad("Dimensions are limited to up to 2 at any given query")
    for d in dimensions:
        if d not in FILTER_KEYS:
            raise _bad(f"Unknown dimension {d!r}; available: {', '.join(FILTER_KEYS)}")
    if len(set(dimensions)) != len(dimensions):
        raise _bad("'dimensions' must not contain duplicates")
    return {
        "from": frm,
        "to": to,
        "interval": interval,
        "metrics": metrics,
        "filters": filters,
        "dimensions": dimensions,
    }


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "POST":
        raise ErrorResponse(405, {"error": True, "message": "Method not allowed"})
    if req.headers.get("X-Auth-Token") != CREDENTIALS["peer5"]["token"]:
        raise ErrorResponse(401, {"error": True, "message": "Invalid auth token"})
    fmt = req.q("format") or "json"
    if fmt not in ("json", "csv"):
        raise _bad("'format' must be 'json' or 'csv'")
    try:
        body = req.json()
    except ValueError:
        raise _bad("Request body must be valid JSON") from None
    q = validate(body, int(sbx.config.clock() * 1000))
    # Inclusive reading of `to`: the bucket starting at `to` comes back as well.
    served_to = q["to"] + PEER5_INTERVALS_MS[q["interval"]] if sbx.config.peer5_to_inclusive else q["to"]
    rows = peer5_rows(
        sbx.config, q["from"], served_to, q["interval"], q["metrics"], q["filters"], q["dimensions"]
    )
    if fmt == "json":
        return json_response(200, {"error": False, "data": rows})
    columns = ["timestamp", *q["dimensions"], *q["metrics"]]
    return Response(200, peer5_csv(rows, columns).encode(), {"Content-Type": "text/csv; charset=utf-8"})
