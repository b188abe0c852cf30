"""Sending a hook's calls: retries, the account's limit, and one answer path for sync and async.

:func:`send` (requests, for tasks) and :func:`asend` (aiohttp, for triggers) differ only in
how bytes travel; what an answer means (rate headers observed, status -> exception, a 429
pausing every caller of the account, a truncated or undecodable body retried) is
:func:`answer`, which both call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import ApiError, RateLimitedError, TransientApiError
from airflow_provider_analytics_export.transport.errors import describe, requests_transport_errors, tls_error
from airflow_provider_analytics_export.transport.responses import error_text
from airflow_provider_analytics_export.transport.retry import TRANSPORT_COUNTS, retry_policy

if TYPE_CHECKING:
    import aiohttp
    import requests

    from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

T = TypeVar("T")


def request_headers(hook: AnalyticsApiHook) -> dict[str, str]:
    """What every call of ``hook`` sends: JSON accepted, credentials in headers (never the URL)."""
    return {"Accept": "application/json", **hook.auth_headers()}


def send(
    hook: AnalyticsApiHook,
    method: str,
    endpoint: str,
    parse: Callable[[requests.Response], T],
    url: str | None,
    authenticated: bool,
    retry: bool,
    kwargs: dict[str, Any],
) -> T:
    """One call through requests, retried per :func:`retry_policy` (once when not ``retry``)."""
    retrying = tenacity.Retrying(**retry_policy(hook.max_attempts if retry else 1, hook.log))
    target = url or f"{hook.base_url}{endpoint}"
    return retrying(_send_once, hook, method, endpoint, parse, target, authenticated, kwargs)


def _send_once(
    hook: AnalyticsApiHook,
    method: str,
    endpoint: str,
    parse: Callable[[requests.Response], T],
    url: str,
    authenticated: bool,
    kwargs: dict[str, Any],
) -> T:
    import requests

    request = hook.session.request if authenticated else requests.request
    kwargs.setdefault("timeout", hook.timeout)
    with hook.limit.slot():  # held while ``parse`` streams the body
        TRANSPORT_COUNTS.add(requests=1)
        try:
            response = request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise _tls_error(hook, exc, method, endpoint, url) from None
        except requests_transport_errors() as exc:
            raise TransientApiError(hook.api_name, method, endpoint, None, describe(exc)) from None
        reply = Reply(
            response.status_code,
            response.headers,
            response.reason or "",
            lambda: response.content,
            requests_transport_errors(),
        )
        return answer(hook, method, endpoint, reply, lambda: parse(response))


async def asend(
    hook: AnalyticsApiHook, session: aiohttp.ClientSession, method: str, endpoint: str, kwargs: dict[str, Any]
) -> Any:
    """One call through aiohttp (for triggers), with the same retries; returns the JSON body.

    The account's limit is thread-based, so only its pause (after a 429) applies here.
    """
    retrying = tenacity.AsyncRetrying(**retry_policy(hook.max_attempts, hook.log))
    return await retrying(_asend_once, hook, session, method, endpoint, kwargs)


async def _asend_once(
    hook: AnalyticsApiHook, session: aiohttp.ClientSession, method: str, endpoint: str, kwargs: dict[str, Any]
) -> Any:
    import aiohttp

    connect, read = hook.timeout
    timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
    url = f"{hook.base_url}{endpoint}"
    TRANSPORT_COUNTS.add(requests=1)
    try:
        async with session.request(
            method, url, headers=request_headers(hook), timeout=timeout, **kwargs
        ) as response:
            raw = await response.read()
    except aiohttp.ClientSSLError as exc:
        raise _tls_error(hook, exc, method, endpoint, url) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise TransientApiError(hook.api_name, method, endpoint, None, describe(exc)) from None
    reply = Reply(response.status, response.headers, response.reason or "", lambda: raw)
    return answer(hook, method, endpoint, reply, lambda: loads(raw))


@dataclass(frozen=True)
class Reply:
    """An answer as either client library delivers it: all :func:`answer` reads of it."""

    status: int
    headers: Mapping[str, str]
    reason: str
    #: The whole body (read only for an error answer).
    content: Callable[[], bytes]
    #: The library's errors for a body cut short while it is read.
    lost: tuple[type[Exception], ...] = ()


def answer(hook: AnalyticsApiHook, method: str, endpoint: str, reply: Reply, parse: Callable[[], T]) -> T:
    """What an answer means, for both senders: ``parse()`` of a success, else the API's error.

    :param parse: the caller's reading of a success; a body it cannot decode is retried.
    """
    _observe_rate_headers(hook, reply.status, reply.headers)
    if reply.status >= 400:
        error = _error(hook, method, endpoint, reply)
        if isinstance(error, RateLimitedError) and error.retry_after:
            hook.limit.pause(error.retry_after)  # every caller of the account waits, not just this one
        raise error
    undecodable: tuple[type[Exception], ...] = (ValueError, *reply.lost)
    try:
        return parse()
    except undecodable as exc:
        message = f"truncated or undecodable response body ({describe(exc)})"
        raise TransientApiError(hook.api_name, method, endpoint, reply.status, message) from None


def _error(hook: AnalyticsApiHook, method: str, endpoint: str, reply: Reply) -> ApiError:
    """The hook's exception for an error answer, from its JSON body or else its text."""
    try:
        raw = reply.content()
    except reply.lost:
        raw = b""
    try:
        body: Any = loads(raw)
    except ValueError:
        body = None
    text = "" if body is not None else error_text(raw, reply.headers.get("Content-Type", ""))
    return hook.api_error(method, endpoint, reply.status, body, text or reply.reason, reply.headers)


def _observe_rate_headers(hook: AnalyticsApiHook, status: int, headers: Mapping[str, str]) -> None:
    """Pause every caller of the account until the reset when the API reports its window used up.

    A 429 is left to :func:`answer`, where its wait (Retry-After, else the reset) decides the pause.
    """
    spec = hook.rate_limit_headers
    if spec is None or status == 429 or not spec.exhausted(headers):
        return
    wait = spec.seconds_until_reset(headers)
    if wait:
        hook.log.info("%s reports its rate-limit window used up; pausing %.1f s.", hook.api_name, wait)
        hook.limit.window_used_up(wait, spec.remaining_in(headers))


def _tls_error(hook: AnalyticsApiHook, exc: BaseException, method: str, endpoint: str, url: str) -> ApiError:
    host_has_scheme = "://" in (hook.connection.host or "")
    return tls_error(exc, hook.api_name, method, endpoint, url, host_has_scheme=host_has_scheme)
