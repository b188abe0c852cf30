"""Sending an API account's calls: retries, the account's limit, and one answer path for sync and async.

:func:`send` (requests, for tasks) and :func:`asend` (aiohttp, for triggers) differ only in
how bytes travel; what an answer means (rate headers observed, status -> exception, a 429
pausing every caller of the account, a truncated or undecodable body retried) is
:func:`answer`, which both call. The account is an :class:`ApiAccount` description, so this
layer knows nothing of the hooks above it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import tenacity

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import (
    ApiError,
    RateLimitedError,
    ServerWaitTooLongError,
    TransientApiError,
)
from airflow_provider_analytics_export.transport.errors import describe, requests_transport_errors, tls_error
from airflow_provider_analytics_export.transport.responses import error_text
from airflow_provider_analytics_export.transport.retry import TRANSPORT_COUNTS, retry_policy

if TYPE_CHECKING:
    import aiohttp
    import requests

    from airflow_provider_analytics_export.transport.account import ApiAccount

T = TypeVar("T")


def request_headers(auth_headers: Mapping[str, str]) -> dict[str, str]:
    """What every call sends: JSON accepted, credentials in headers (never the URL)."""
    return {"Accept": "application/json", **auth_headers}


def send(
    account: ApiAccount,
    session: requests.Session | None,
    method: str,
    endpoint: str,
    parse: Callable[[requests.Response], T],
    url: str | None,
    retry: bool,
    kwargs: dict[str, Any],
) -> T:
    """One call through requests, retried per :func:`retry_policy` (once when not ``retry``).

    :param session: the account's session (its headers carry the credentials); None sends
        without them (e.g. a download link that is its own credential).
    """
    retrying = tenacity.Retrying(**retry_policy(account.max_attempts if retry else 1, account.log))
    target = url or f"{account.base_url}{endpoint}"
    return retrying(_send_once, account, session, method, endpoint, parse, target, kwargs)


def _send_once(
    account: ApiAccount,
    session: requests.Session | None,
    method: str,
    endpoint: str,
    parse: Callable[[requests.Response], T],
    url: str,
    kwargs: dict[str, Any],
) -> T:
    import requests

    request = session.request if session is not None else requests.request
    kwargs.setdefault("timeout", account.timeout)
    with account.limit.slot() as exchange:  # held while ``parse`` streams the body
        TRANSPORT_COUNTS.add(requests=1)
        failure: ApiError | None = None
        try:
            response = request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            failure = _tls_error(account, exc, method, endpoint, url)
        except requests_transport_errors() as exc:
            failure = TransientApiError(account.api_name, method, endpoint, None, describe(exc))
        exchange.answered()  # before parsing: a rate window may end one API window after this
        if failure is not None:
            raise failure  # outside the handler, so the library's exception (and URL) is not its context
        _mark_cut_body(response)
        reply = Reply(response.status_code, response.headers, response.reason or "", lambda: response.content)
        return answer(account, method, endpoint, reply, lambda: parse(response))


async def asend(
    account: ApiAccount, session: aiohttp.ClientSession, method: str, endpoint: str, kwargs: dict[str, Any]
) -> Any:
    """One call through aiohttp (for triggers), with the same retries; returns the JSON body.

    The account's limit blocks threads, so an async call neither holds a slot nor waits on a
    pause another caller set: a trigger polls once per interval, and its own 429 or 503 is
    waited out by the retry policy. What it learns (a 429, a used-up window) still pauses
    every synchronous caller of the account.
    """
    retrying = tenacity.AsyncRetrying(**retry_policy(account.max_attempts, account.log))
    return await retrying(_asend_once, account, session, method, endpoint, kwargs)


async def _asend_once(
    account: ApiAccount, session: aiohttp.ClientSession, method: str, endpoint: str, kwargs: dict[str, Any]
) -> Any:
    import aiohttp

    connect, read = account.timeout
    timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
    url = f"{account.base_url}{endpoint}"
    TRANSPORT_COUNTS.add(requests=1)
    failure: ApiError | None = None
    try:
        async with session.request(
            method, url, headers=dict(account.headers), timeout=timeout, **kwargs
        ) as response:
            raw = await response.read()
    except aiohttp.ClientSSLError as exc:
        failure = _tls_error(account, exc, method, endpoint, url)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        failure = TransientApiError(account.api_name, method, endpoint, None, describe(exc))
    if failure is not None:
        raise failure  # outside the handler, so the library's exception (and URL) is not its context
    reply = Reply(response.status, response.headers, response.reason or "", lambda: raw)
    return answer(account, method, endpoint, reply, lambda: loads(raw))


@dataclass(frozen=True)
class Reply:
    """An answer as either client library delivers it: all :func:`answer` reads of it."""

    status: int
    headers: Mapping[str, str]
    reason: str
    #: The whole body (read only for an error answer).
    content: Callable[[], bytes]


class BodyCutShort(Exception):
    """The answer's body broke off while it was read: raised only by reading the body itself."""


#: What a body that arrived whole but is not the JSON or text it claims raises when decoded.
UNDECODABLE = (msgspec.DecodeError, json.JSONDecodeError, UnicodeDecodeError)


def _mark_cut_body(response: requests.Response) -> None:
    """Make a body that breaks off while ``parse`` streams it recognisable as the answer's fault.

    requests raises the same errors for a lost body as for any other connection, and a
    destination may use requests too (an HTTP object store): only an error raised by reading
    this response's body is the answer's, so only that one is turned into :class:`BodyCutShort`.
    """
    read = response.iter_content
    lost = requests_transport_errors()

    def iter_content(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from read(*args, **kwargs)
        except lost as exc:
            cut = describe(exc)
        else:
            return
        raise BodyCutShort(cut)  # outside the handler: the original's text may hold the URL

    response.__dict__["iter_content"] = iter_content  # ``content`` and ``iter_lines`` read through it


def answer(account: ApiAccount, method: str, endpoint: str, reply: Reply, parse: Callable[[], T]) -> T:
    """What an answer means, for both senders: ``parse()`` of a success, else the API's error.

    :param parse: the caller's reading of a success. Only the answer's own faults are the
        API's and retried: a body cut short while read, or one that does not decode
        (:data:`UNDECODABLE`). Anything else ``parse`` raises (a destination that cannot be
        opened, written or committed; a caller's bug) propagates as itself, never retried,
        so it cannot cause a second create, stream or download.
    """
    _observe_rate_headers(account, reply.status, reply.headers)
    if reply.status >= 400:
        error = _error(account, method, endpoint, reply)
        if isinstance(error, (RateLimitedError, TransientApiError)):
            _check_wait(account, error, reply.headers)
        if isinstance(error, RateLimitedError) and error.retry_after:
            account.limit.pause(error.retry_after)  # every caller of the account waits, not just this one
        raise error
    try:
        return parse()
    except BodyCutShort as exc:
        message = f"truncated response body ({exc})"
    except UNDECODABLE as exc:
        message = f"undecodable response body ({type(exc).__name__})"
    raise TransientApiError(account.api_name, method, endpoint, reply.status, message)


def _error(account: ApiAccount, method: str, endpoint: str, reply: Reply) -> ApiError:
    """The API's exception for an error answer, from its JSON body or else its text."""
    try:
        raw = reply.content()
    except BodyCutShort:
        raw = b""
    try:
        body: Any = loads(raw)
    except ValueError:
        body = None
    text = "" if body is not None else error_text(raw, reply.headers.get("Content-Type", ""))
    return account.error_for(method, endpoint, reply.status, body, text or reply.reason, reply.headers)


def _check_wait(account: ApiAccount, error: ApiError, headers: Mapping[str, str]) -> None:
    """Fail at once when the wait a retried error asks for is beyond the connection's ceiling.

    Waiting would hold the task (and, for a 429, every caller of the account) for as long as
    the server says, hours if it says so; the error raised names both values.
    """
    wait = error.retry_after
    if wait is None or wait <= account.max_server_wait:
        return
    source = "Retry-After" if "Retry-After" in headers else "rate-limit reset"
    raise ServerWaitTooLongError(
        error.api,
        error.method,
        error.endpoint,
        error.status,
        f"{error.api_message} The server asks to wait {wait:.0f} s ({source}) before another "
        f"attempt, more than the {account.max_server_wait:.0f} s {account.where} allows (extra "
        "max_server_wait); failing now instead of waiting.",
        wait,
        code=error.code,
        request_id=error.request_id,
    )


def _observe_rate_headers(account: ApiAccount, status: int, headers: Mapping[str, str]) -> None:
    """Pause every caller of the account until the reset when the API reports its window used up.

    A 429 is left to :func:`answer`, where its wait (Retry-After, else the reset) decides the pause.
    """
    spec = account.rate_limit_headers
    if spec is None or status == 429 or not spec.exhausted(headers):
        return
    wait = spec.seconds_until_reset(headers)
    if wait and wait > account.max_server_wait:
        # This answer is good; the request that needs the window fails if the API refuses it.
        account.log.warning(
            "%s reports its rate-limit window used up for %.0f s, more than the %.0f s this connection "
            "waits (max_server_wait); not pausing.",
            account.api_name,
            wait,
            account.max_server_wait,
        )
    elif wait:
        # The limit pauses only when its own count does not explain the used-up window.
        account.limit.window_used_up(wait, spec.remaining_in(headers))


def _tls_error(account: ApiAccount, exc: BaseException, method: str, endpoint: str, url: str) -> ApiError:
    return tls_error(exc, account.api_name, method, endpoint, url, host_has_scheme=account.host_has_scheme)
