"""What a failed call means: an error response or a failed connection -> the exception to raise.

Pure functions, shared by the sync and async senders: they build exceptions and never act on
them (the sender pauses the account on a 429). Nothing here puts an exception's own text in a
message, since a requests/aiohttp error can hold a URL with a download token.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_analytics_export.exceptions import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    TlsHandshakeError,
    TransientApiError,
)
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.transport.responses import api_error_message
from airflow_provider_analytics_export.transport.retry import parse_retry_after


def requests_transport_errors() -> tuple[type[Exception], ...]:
    """requests' errors where the request may never have reached the API or its answer was lost.

    Safe to send again for the read-only/idempotent calls these hooks make. A function,
    not a constant, so importing a hook (at DAG parse time) does not import requests.
    """
    import requests

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )


def retry_after(status: int, headers: Mapping[str, str], window: RateLimitHeaders | None) -> float | None:
    """How long an error answer asks us to wait.

    Rate-limit headers may come on every answer: only a 429 waits for their reset (when it has
    no Retry-After); any other status waits only for a Retry-After sent with it (e.g. a 503's).
    """
    seconds = parse_retry_after(headers.get("Retry-After"))
    if seconds is None and status == 429 and window is not None:
        seconds = window.seconds_until_reset(headers)
    return seconds


def error_for_status(
    api: str,
    method: str,
    endpoint: str,
    status: int,
    body: Any,
    text: str,
    headers: Mapping[str, str],
    window: RateLimitHeaders | None = None,
) -> ApiError:
    """The exception for an error response: its class by status, the API's own message, its wait.

    :param body: the decoded JSON body, or None when it was not JSON.
    :param text: what to show when the body holds no message (e.g. the status reason).
    :param window: the API's rate-limit headers, whose reset a 429 without Retry-After waits for.
    """
    error_class: type[ApiError]
    if status == 429:
        error_class = RateLimitedError
    elif status >= 500:
        error_class = TransientApiError
    elif status in (401, 403):
        error_class = AuthenticationError
    else:
        error_class = InvalidRequestError
    message = api_error_message(body, text)
    return error_class(api, method, endpoint, status, message, retry_after(status, headers, window))


def describe(exc: BaseException) -> str:
    """What went wrong, without the exception's text (it can hold a URL with a download token)."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "response body cut short (ChunkedEncodingError)"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed or dropped ({type(exc).__name__})"
    return type(exc).__name__


def tls_error(
    exc: BaseException, api: str, method: str, endpoint: str, url: str, *, host_has_scheme: bool
) -> ApiError:
    """A failed TLS handshake: :class:`TlsHandshakeError` unless another attempt could succeed.

    :param host_has_scheme: whether the connection's host named one (else https was assumed).
    """
    reason = permanent_tls_failure(exc)
    if reason is None:
        return TransientApiError(api, method, endpoint, None, describe(exc))
    return TlsHandshakeError(api, method, endpoint, None, _tls_message(url, reason, host_has_scheme))


def _tls_message(url: str, reason: str, host_has_scheme: bool) -> str:
    """Why the handshake failed and what to change, without the URL's path or query."""
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    message = f"TLS handshake with {where} failed ({reason})"
    if reason.startswith("certificate"):
        return f"{message}: the server's certificate does not verify."
    hint = "if the server speaks plain HTTP, set the connection's host to http://..."
    if not host_has_scheme:
        return f"{message}: the connection's host has no scheme, so https was used; {hint}"
    return f"{message}: the server does not speak TLS on that port; {hint}"


def permanent_tls_failure(exc: BaseException) -> str | None:
    """The OpenSSL reason of a handshake failure that retrying cannot fix, else None.

    An EOF or reset during the handshake may be a dropped connection (worth another
    attempt); a wrong protocol version (plain HTTP answered) or a failed certificate
    check will fail the same way every time. requests, urllib3 and aiohttp wrap the
    ``ssl`` error (in arguments, ``reason`` or the cause), so the innermost one decides.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        candidates = (*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__)
        cause = next((item for item in candidates if isinstance(item, BaseException)), None)
    innermost = next((item for item in reversed(chain) if isinstance(item, ssl.SSLError)), None)
    if innermost is None or isinstance(innermost, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return None
    if isinstance(innermost, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {getattr(innermost, 'verify_message', None) or innermost}"
    return f"SSL: {getattr(innermost, 'reason', None) or type(innermost).__name__}"
