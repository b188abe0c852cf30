"""Fake Braze GET /sessions/data_series (Bearer REST key)."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .credentials import CREDENTIALS
from .data import braze_series
from .server import ErrorResponse, Request, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

_OFFSET_RE = re.compile(r"([+-])(\d{1,2}):?(\d{2})$")


def new_state() -> dict[str, Any]:
    return {"window": None, "used": 0}


def _pool(sbx: SandboxServer) -> tuple[int, int, int]:
    """(limit, used, reset epoch seconds) of the current fixed window of the shared request pool."""
    window = float(sbx.config.braze_rate_window)
    index = math.floor(time.time() / window)
    state = sbx.state["braze"]
    if state["window"] != index:
        state["window"], state["used"] = index, 0
    return int(sbx.config.braze_rate_limit or 0), state["used"], math.ceil((index + 1) * window)


def guard(sbx: SandboxServer, req: Request) -> None:
    """Braze's shared hourly pool: over it, 429 with X-RateLimit-* headers and no Retry-After."""
    if sbx.config.braze_rate_limit is None:
        return
    with sbx.lock:
        limit, used, _ = _pool(sbx)
        sbx.state["braze"]["used"] = used + 1
    if used >= limit:
        raise ErrorResponse(429, {"message": "API rate limit exceeded", "errors": []})


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """X-RateLimit-Limit/-Remaining/-Reset (UTC epoch seconds) on every answer, as Braze documents."""
    if sbx.config.braze_rate_limit is None:
        return {}
    with sbx.lock:
        limit, used, reset = _pool(sbx)
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - used)),
        "X-RateLimit-Reset": str(reset),
    }


def parse_ending_at(raw: str) -> datetime:
    """ISO-8601 as Braze accepts it, including 'Z' and short offsets like '-5:00' (naive = UTC)."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    m = _OFFSET_RE.search(text) if "T" in text else None
    if m:
        text = text[: m.start()] + f"{m.group(1)}{int(m.group(2)):02d}:{m.group(3)}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "GET":
        raise ErrorResponse(405, {"message": "Method not allowed"})
    auth = req.headers.get("Authorization") or ""
    if not auth.startswith("Bearer ") or auth[7:].strip() != CREDENTIALS["braze"]["api_key"]:
        raise ErrorResponse(401, {"message": "Invalid API key"})
    raw_length = req.q("length")
    if raw_length is None:
        raise ErrorResponse(400, {"message": "Missing required parameter 'length'"})
    try:
        length = int(raw_length)
    except ValueError:
        raise ErrorResponse(400, {"message": "'length' must be an integer between 1 and 100"}) from None
    if not 1 <= length <= 100:
        raise ErrorResponse(400, {"message": "'length' must be an integer between 1 and 100"})
    unit = req.q("unit") or "day"
    if unit not in ("day", "hour"):
        raise ErrorResponse(400, {"message": "'unit' must be either 'day' or 'hour'"})
    raw_end = req.q("ending_at")
    if raw_end:
        try:
            ending_at = parse_ending_at(raw_end)
        except ValueError:
            raise ErrorResponse(400, {"message": "'ending_at' must be an ISO-8601 datetime"}) from None
    else:
        ending_at = datetime.fromtimestamp(sbx.config.clock(), tz=timezone.utc)
    data = braze_series(
        sbx.config, length, unit, ending_at, req.q("app_id") or None, req.q("segment_id") or None
    )
    return json_response(200, {"message": "success", "data": data})
