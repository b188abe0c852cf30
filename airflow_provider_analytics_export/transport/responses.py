"""Reading an API's answer: required fields, time-series rows, file bodies and error text.

A complete answer without what the API documents fails at once with
:class:`~airflow_provider_analytics_export.exceptions.MalformedResponseError` naming API,
endpoint, status and the field, never the body: asking again would get the same answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import ApiError, MalformedResponseError

if TYPE_CHECKING:
    import requests

FILE_CHUNK_BYTES = 1024 * 1024


def api_error_message(body: Any, fallback: str) -> str:
    """Pull the API's own error text out of the shapes the five APIs use."""
    if isinstance(body, dict):
        value = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(value, dict):
            value = value.get("error") or json.dumps(value)
        if isinstance(value, list):
            value = "; ".join(
                str(item.get("msg") or item.get("message") or item) if isinstance(item, dict) else str(item)
                for item in value
            )
        if isinstance(value, str) and value:
            if body.get("details"):
                value += f" {json.dumps(body['details'])}"
            return value
    return fallback[:500] or "(empty response body)"


def error_text(content: bytes, content_type: str) -> str:
    """An error body that is not JSON, as text; an HTML page only by its type, not dumped."""
    text = content.decode(errors="replace")
    if "<html" in text[:200].lower():
        return f"HTML error page ({content_type or 'unknown type'})"
    return text.strip()


def require(
    body: Any,
    *path: str | int,
    api: str,
    method: str,
    endpoint: str,
    status: int | None,
    kind: type | None = None,
) -> Any:
    """``body[path[0]][path[1]]...``, or :class:`MalformedResponseError` naming the missing field.

    :param body: the decoded response body.
    :param path: keys (str) and list indexes (int) leading to the field.
    :param api: the API's name, for the error message.
    :param method: the HTTP method, for the error message.
    :param endpoint: the endpoint (without query string), for the error message.
    :param status: the response's HTTP status.
    :param kind: the type the field must have, e.g. ``list``.
    """
    value = body
    for depth, key in enumerate(path):
        if isinstance(key, int):
            present = isinstance(value, list) and -len(value) <= key < len(value)
        else:
            present = isinstance(value, Mapping) and key in value
        if not present:
            message = f"response has no {_field(path[: depth + 1])!r} field"
            raise MalformedResponseError(api, method, endpoint, status, message)
        value = value[key]
    if kind is not None and not isinstance(value, kind):
        message = f"response field {_field(path)!r} is {type(value).__name__}, not {kind.__name__}"
        raise MalformedResponseError(api, method, endpoint, status, message)
    return value


def body_reader(response: requests.Response, api: str, method: str, endpoint: str) -> Callable[..., Any]:
    """:func:`require` bound to one response's JSON body: ``body_reader(...)("exports", "total")``."""
    return partial(
        require,
        loads(response.content),
        api=api,
        method=method,
        endpoint=endpoint,
        status=response.status_code,
    )


def series_rows(
    response: requests.Response,
    api: str,
    method: str,
    endpoint: str,
    row_field: str,
    succeeded: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """The ``data`` list of a time-series answer, every row carrying ``row_field``.

    Braze and Peer5 answer 200 with a status in the body (``message``/``error``); a body
    that reports failure, or has no ``data`` list, raises with the API's own message.
    """
    field = body_reader(response, api, method, endpoint)
    body = field()
    if not isinstance(body, dict) or not succeeded(body) or not isinstance(body.get("data"), list):
        message = body.get("message") if isinstance(body, dict) else None
        raise ApiError(
            api,
            method,
            endpoint,
            response.status_code,
            f"export failed: {message or 'no data list in the response'}",
        )
    for index in range(len(body["data"])):
        field("data", index, row_field)
    return list(body["data"])


def file_chunks(
    response: requests.Response,
    api: str,
    method: str,
    endpoint: str,
    *,
    content_type: str,
    start: re.Pattern[bytes],
    expected: str,
    chunk_size: int = FILE_CHUNK_BYTES,
) -> Iterator[bytes]:
    """The body chunk by chunk, once its type and first line show it is the file asked for.

    A 200 can carry an HTML page, a JSON error or nothing at all instead of the export;
    written as is, it would pass for (empty) data. Only the first line is buffered.

    :param response: a streamed (or already read) response.
    :param api: the API's name, for the error message.
    :param method: the HTTP method, for the error message.
    :param endpoint: the endpoint (without query string), for the error message.
    :param content_type: the documented media type, e.g. ``text/csv`` (parameters ignored).
    :param start: what the body's first bytes must match, e.g. the CSV header.
    :param expected: ``start`` in words, for the error message.
    :param chunk_size: bytes per chunk read.
    """
    actual = response.headers.get("Content-Type", "")
    if actual.split(";")[0].strip().lower() != content_type:
        message = f"response Content-Type is {actual or 'missing'!r}, not {content_type!r}"
        raise MalformedResponseError(api, method, endpoint, response.status_code, message)
    chunks = response.iter_content(chunk_size)
    head = b""
    for chunk in chunks:
        head += chunk
        if b"\n" in head.lstrip() or len(head) >= chunk_size:
            break
    if not start.match(head):
        message = f"response body does not start with {expected}"
        raise MalformedResponseError(api, method, endpoint, response.status_code, message)
    yield head
    yield from chunks


def _field(path: tuple[str | int, ...]) -> str:
    """``("series", 0, "data")`` -> ``series[0].data``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else key
    return text or "(body)"
