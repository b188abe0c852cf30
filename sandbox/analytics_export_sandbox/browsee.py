"""Fake Browsee session export: POST /api/v1/export/sessions, one open request per API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .credentials import CREDENTIALS
from .data import BROWSEE_FIELDS, BROWSEE_SEGMENTS, browsee_page
from .server import ErrorResponse, Request, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

ONE_OPEN_MESSAGE = "Only one open request allowed. Wait for the previous response."


def _fail(message: str, status: int = 400) -> ErrorResponse:
    kind = "unauthorized" if status == 401 else "failure"
    return ErrorResponse(status, {"status": kind, "message": {"error": message}})


def new_state() -> dict[str, Any]:
    return {"in_flight": {}}


def guard(sbx: SandboxServer, req: Request) -> Callable[[], None] | None:
    """Enforce the documented 'one open request' rule: a concurrent request for the same key gets 429."""
    try:
        body = req.json()
    except ValueError:
        return None
    key = body.get("apiKey") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        return None
    with sbx.lock:
        in_flight: dict[str, int] = sbx.state["browsee"]["in_flight"]
        if in_flight.get(key):
            raise ErrorResponse(
                429, {"status": "failure", "message": {"error": ONE_OPEN_MESSAGE}}, overlap=True
            )
        in_flight[key] = 1

    def release() -> None:
        with sbx.lock:
            in_flight.pop(key, None)

    return release


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"Invalid parameter '{name}': must be an integer.")
    return value


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "POST":
        raise _fail("Only POST method is supported.", 405)
    try:
        body = req.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _fail("Request body must be a JSON object.")
    creds = CREDENTIALS["browsee"]
    api_key = body.get("apiKey")
    if not api_key:
        raise _fail("API Key missing.")
    if api_key != creds["api_key"]:
        raise _fail("API Key invalid.", 401)
    secret = body.get("secretKey")
    if not secret:
        raise _fail("Secret Key missing.")
    if secret != creds["secret_key"]:
        raise _fail("Secret Key invalid.", 401)

    now = int(sbx.config.clock())
    start = _int(body, "start", now - 86_400)
    end = _int(body, "end", now)
    offset = _int(body, "from", 0)
    limit = _int(body, "limit", 100)
    if start < 0 or end < 0:
        raise _fail("Invalid parameter 'start'/'end': must be Unix seconds >= 0.")
    if start > end:
        raise _fail("Invalid parameter 'start': must not be after 'end'.")
    if offset < 0:
        raise _fail("Invalid parameter 'from': must be >= 0.")
    if not 1 <= limit <= 100:
        raise _fail("Invalid parameter 'limit': must be between 1 and 100.")
    segment = body.get("segmentId")
    if segment is not None and (not isinstance(segment, str) or segment not in BROWSEE_SEGMENTS):
        raise _fail(f"Invalid segmentId: {segment!r} not found.")
    options = body.get("options")
    fields: list[str] | None = None
    if options is not None:
        if not isinstance(options, dict):
            raise _fail("Invalid parameter 'options': must be an object.")
        select = options.get("select")
        if select is not None:
            if not isinstance(select, list) or not all(isinstance(f, str) for f in select):
                raise _fail("Invalid parameter 'options.select': must be a list of field names.")
            for f in select:
                if f not in BROWSEE_FIELDS and f != "sessionId":
                    raise _fail(f"Invalid field in options.select: '{f}'.")
            fields = select
    total, data = browsee_page(sbx.config, start, end, segment, fields, offset, limit)
    return json_response(
        200, {"status": "success", "exports": {"total": total, "to": offset + len(data), "data": data}}
    )
