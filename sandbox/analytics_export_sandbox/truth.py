"""GET /_sandbox/truth/<api>: the in-process truth functions over HTTP.

For tests (and users' CI) that run the sandbox in another process: they ask what an API holds
finally, or with ``as_of`` (epoch seconds) what it served at that sandbox time, and compare an
export with it. Each answer is ``{"data": [...]}`` in the truth function's order and shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .braze import braze_window, parse_ending_at
from .browsee import browsee_sessions
from .config import SandboxConfig
from .openpanel import openpanel_events
from .peer5 import peer5_rows
from .sealmetrics import sealmetrics_rows
from .server import Request, Response, json_response


class _Missing(ValueError):
    """A parameter a truth needs is absent or malformed (answered 400, naming it)."""


def _text(req: Request, name: str) -> str:
    value = req.q(name)
    if not value:
        raise _Missing(f"query parameter {name!r} is required")
    return value


def _number(req: Request, name: str) -> int:
    try:
        return int(_text(req, name))
    except ValueError:
        raise _Missing(f"query parameter {name!r} must be an integer") from None


def _list(req: Request, name: str) -> list[str] | None:
    value = req.q(name)
    return [part for part in value.split(",") if part] if value else None


def _moment(req: Request, name: str) -> datetime:
    try:
        return parse_ending_at(_text(req, name))
    except ValueError:
        raise _Missing(f"query parameter {name!r} must be an ISO-8601 datetime") from None


def _openpanel(c: SandboxConfig, req: Request, as_of: float | None) -> list[dict[str, Any]]:
    """projectId, start, end (dates, inclusive), optional event (comma list), profileId, includes."""
    return list(
        openpanel_events(
            c,
            _text(req, "projectId"),
            _text(req, "start"),
            _text(req, "end"),
            _list(req, "event"),
            req.q("profileId"),
            _list(req, "includes"),
            as_of=as_of,
        )
    )


def _browsee(c: SandboxConfig, req: Request, as_of: float | None) -> list[dict[str, Any]]:
    """start, end (epoch seconds, half-open), optional segmentId and fields (comma list)."""
    start, end = _number(req, "start"), _number(req, "end")
    return list(browsee_sessions(c, start, end, req.q("segmentId"), _list(req, "fields"), as_of))


def _braze(c: SandboxConfig, req: Request, as_of: float | None) -> list[dict[str, Any]]:
    """start, end (ISO-8601), unit (day|hour), optional app_id and segment_id."""
    unit = req.q("unit") or "day"
    if unit not in ("day", "hour"):
        raise _Missing("query parameter 'unit' must be 'day' or 'hour'")
    start, end = _moment(req, "start"), _moment(req, "end")
    return braze_window(c, start, end, unit, req.q("app_id"), req.q("segment_id"), as_of)


def _peer5(c: SandboxConfig, req: Request, as_of: float | None) -> list[dict[str, Any]]:
    """from, to (epoch ms), interval, metrics and optional dimensions (comma lists)."""
    metrics = _list(req, "metrics")
    if not metrics:
        raise _Missing("query parameter 'metrics' is required")
    frm, to, interval = _number(req, "from"), _number(req, "to"), _text(req, "interval")
    return peer5_rows(c, frm, to, interval, metrics, None, _list(req, "dimensions"), as_of)


def _sealmetrics(c: SandboxConfig, req: Request, as_of: float | None) -> list[dict[str, Any]]:
    """account_id, export_type, date_from, date_to (inclusive), no filters."""
    params = {name: _text(req, name) for name in ("account_id", "export_type", "date_from", "date_to")}
    return list(sealmetrics_rows(c, {**params, "filters": {}}, as_of))


TRUTHS: dict[str, Callable[[SandboxConfig, Request, float | None], list[dict[str, Any]]]] = {
    "openpanel": _openpanel,
    "browsee": _browsee,
    "braze": _braze,
    "peer5": _peer5,
    "sealmetrics": _sealmetrics,
}


def answer(config: SandboxConfig, api: str, req: Request) -> Response:
    """The truth of ``api`` for the query (404: unknown API; 400: a missing or bad parameter)."""
    truth = TRUTHS.get(api)
    if truth is None:
        return json_response(404, {"error": f"no truth for {api!r}; known: {sorted(TRUTHS)}"})
    try:
        raw = req.q("as_of")
        as_of = float(raw) if raw else None
    except ValueError:
        return json_response(400, {"error": "query parameter 'as_of' must be epoch seconds"})
    try:
        data = truth(config, req, as_of)
    except (ValueError, KeyError) as exc:  # a bad date, interval or segment: the caller's mistake
        return json_response(400, {"error": str(exc)})
    return json_response(200, {"data": data})
