"""Sealmetrics' error envelope: what an error answer says, as the exception the transport raises.

The documented envelope is ``{"error": {code, message, detail?}, "request_id"}``; the spec
also names FastAPI's ``{"detail": [{loc, msg, type}]}`` for 422. A 429 comes as
``rate_limit_exceeded`` (wait and retry) or ``quota_exceeded`` (a plan quota: not retried blindly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_analytics_export.exceptions import ApiError, QuotaExceededError
from airflow_provider_analytics_export.transport.retry import parse_retry_after


def error_envelope(body: Any) -> tuple[str, str | None, str | None] | None:
    """(message, code, request_id) of an error body; None when it is not Sealmetrics' shape.

    Validation details name the field (``body.date_from: invalid date``) so the user can map
    them to the request.
    """
    if not isinstance(body, Mapping):
        return None
    error, request_id = body.get("error"), body.get("request_id")
    if isinstance(error, Mapping):
        message, code, detail = (
            str(error.get("message") or error.get("code")),
            error.get("code"),
            error.get("detail"),
        )
    elif isinstance(body.get("detail"), list):
        message, code, detail = "Request validation failed", None, body["detail"]
    else:
        return None
    if isinstance(detail, list) and detail:
        message += ": " + "; ".join(_detail_text(item) for item in detail)
    elif detail:
        message += f" ({json.dumps(detail)[:500]})"
    return message, str(code) if code else None, str(request_id) if request_id else None


def _detail_text(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    field = item.get("field") or ".".join(str(part) for part in item.get("loc") or ())
    text = item.get("message") or item.get("msg") or item.get("type") or ""
    return f"{field}: {text}" if field else str(text)


def with_envelope(
    error: ApiError, code: str | None, request_id: str | None, retry_after: str | None
) -> ApiError:
    """``error`` (the shared status mapping of the envelope's message) with its ``code`` and request id.

    A 429 ``quota_exceeded`` becomes :class:`QuotaExceededError`, waiting only the answer's
    own ``Retry-After`` (``retry_after``), never the rate-limit window's reset.
    """
    kind, wait = type(error), error.retry_after
    if error.status == 429 and code == "quota_exceeded":
        kind, wait = QuotaExceededError, parse_retry_after(retry_after)
    return kind(
        error.api,
        error.method,
        error.endpoint,
        error.status,
        error.api_message,
        wait,
        code=code,
        request_id=request_id,
    )
