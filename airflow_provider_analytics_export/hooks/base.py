"""The HTTP transport every API hook builds on.

One place decides timeouts, retries, error messages, client-side limits and secret
handling, so the five hooks only describe their API: default host, credentials and
endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import tenacity
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitedError,
)
from airflow_provider_analytics_export.extras import extra_fields
from airflow_provider_analytics_export.transport.limits import (
    AccountLimit,
    RateLimitHeaders,
    RequestLimit,
    shared_limit,
)

if TYPE_CHECKING:
    import aiohttp
    import requests

T = TypeVar("T")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
FILE_CHUNK_BYTES = 1024 * 1024


# Errors where the request may never have reached the API or its answer was lost:
# safe to send again for the read-only/idempotent calls these hooks make.
def _transport_errors() -> tuple[type[Exception], ...]:
    """Errors where the request may never have reached the API or its answer was lost.

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


class TransientApiError(ApiError):
    """5xx, a dropped connection, a timeout or a truncated/undecodable body: worth retrying."""


class TlsHandshakeError(ApiError):
    """The TLS handshake failed in a way another attempt cannot fix, so it is not retried.

    Typically an ``https://`` URL (the default for a host without scheme) pointing at a
    plain-HTTP server, or a certificate that does not verify.
    """


class TransportCounts:
    """Requests sent and retries scheduled by every hook in this process.

    Process-wide rather than per hook because an export may use several hooks and
    worker threads (parallel page fetches); a task reads the difference over its run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0

    def add(self, *, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries

    def snapshot(self) -> tuple[int, int]:
        """(requests, retries) so far."""
        with self._lock:
            return self.requests, self.retries


#: Every request (attempt) and retry made through :class:`AnalyticsApiHook` in this process.
TRANSPORT_COUNTS = TransportCounts()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), via urllib3."""
    if not value:
        return None
    try:
        from urllib3.util.retry import Retry

        return max(0.0, float(Retry().parse_retry_after(value)))
    except Exception:
        return None


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for attempt ``attempt`` (1-based), never below Retry-After."""
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        # A little jitter on top so many waiting clients do not return in lockstep.
        return retry_after + random.uniform(0, min(1.0, 0.1 * retry_after + 0.1))
    return backoff


def _retry_wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    return backoff_seconds(state.attempt_number, getattr(exc, "retry_after", None))


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


class AnalyticsApiHook(BaseHook):
    """Base hook: a ``requests.Session`` per hook with timeouts, retries and shared limits.

    Subclasses set ``conn_type`` and ``hook_name`` (the rest of Airflow's hook attributes
    follow from them), their API's limits and headers, and implement :meth:`auth_headers`
    and :meth:`check_connection`.

    Connection extras are declared in :mod:`airflow_provider_analytics_export.extras` and
    read with :meth:`extra`, whatever way Airflow stored them.

    :param conn_id: the Airflow connection to use; defaults to ``<conn_type>_default``. Also
        accepted under the API's own name, ``<conn_type>_conn_id`` (e.g. ``browsee_conn_id``),
        which is how Airflow's UI builds a hook.
    :param max_attempts: attempts per request before giving up (default: the connection
        extra ``max_attempts``).
    """

    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: ``<conn_type>_conn_id``, ``<conn_type>_default`` and ``hook_name``: set by
    #: :meth:`__init_subclass__`, since Airflow's provider manager and UI read them.
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    api_name: ClassVar[str]
    default_host: ClassVar[str | None] = None
    #: Client-side limit per API account: (max requests in flight, max calls, period seconds).
    request_limit: ClassVar[tuple[int | None, int | None, float] | None] = None
    #: Headers in which the API reports its own rate-limit window, if it does.
    rate_limit_headers: ClassVar[RateLimitHeaders | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Derive the connection attributes of a hook that declares its ``conn_type``."""
        super().__init_subclass__(**kwargs)
        if "conn_type" in cls.__dict__:
            cls.conn_name_attr = f"{cls.conn_type}_conn_id"
            cls.default_conn_name = f"{cls.conn_type}_default"
            cls.api_name = cls.hook_name

    def __init__(
        self, conn_id: str | None = None, max_attempts: int | None = None, **named_conn_id: str
    ) -> None:
        api_conn_id = named_conn_id.pop(self.conn_name_attr, None)
        if named_conn_id:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {', '.join(named_conn_id)}; "
                f"the connection id is conn_id= or {self.conn_name_attr}=."
            )
        if conn_id and api_conn_id and conn_id != api_conn_id:
            raise TypeError(f"{type(self).__name__}() got both conn_id= and {self.conn_name_attr}=.")
        super().__init__()
        self.conn_id = conn_id or api_conn_id or self.default_conn_name
        self._max_attempts = max_attempts

    # -- connection -----------------------------------------------------------------
    @cached_property
    def connection(self) -> Any:
        conn = self.get_connection(self.conn_id)
        for secret in (conn.password, conn.login):
            if secret:
                mask_secret(secret)
        return conn

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The connection's extra JSON as stored (see :meth:`extra` for checked values)."""
        stored = self.connection.extra_dejson or {}
        if not isinstance(stored, dict):
            raise ValueError(f"{self._where}: extra must be a JSON object, not {type(stored).__name__}.")
        return dict(stored)

    def extra(self, name: str) -> Any:
        """Connection extra ``name``, checked by its declaration; null or blank give its default."""
        return extra_fields(self.conn_type)[name].read(self.extras.get(name), self._where)

    @property
    def _where(self) -> str:
        return f"Connection {self.conn_id!r} ({self.api_name})"

    @cached_property
    def base_url(self) -> str:
        """Connection host (with scheme) or the API's public default; no trailing slash."""
        host = (self.connection.host or self.default_host or "").strip().rstrip("/")
        if not host:
            raise ValueError(
                f"Connection {self.conn_id!r} ({self.api_name}) has no host: set it to the API's "
                "base URL, for example the instance REST endpoint."
            )
        if "://" not in host:
            host = f"https://{host}"
        if self.connection.port and not urlsplit(host).port:
            host = f"{host}:{self.connection.port}"
        return host

    @cached_property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds; connection extras ``connect_timeout`` / ``timeout`` override."""
        return float(self.extra("connect_timeout")), float(self.extra("timeout"))

    @cached_property
    def max_attempts(self) -> int:
        return int(self._max_attempts or self.extra("max_attempts"))

    def required_credential(self, value: str | None, field: str) -> str:
        """``value``, or a clear error naming the connection field when the credential is empty."""
        if not value:
            raise ValueError(f"Connection {self.conn_id!r} ({self.api_name}) is missing its {field}.")
        return value

    def from_extra(self, value: str | None, key: str) -> str:
        """``value`` if given, else the connection extra ``key`` (e.g. a default project/site id)."""
        resolved = value or self.extra(key)
        if not resolved:
            raise ValueError(
                f"No {self.api_name} {key}: pass {key}= or set {key!r} in connection {self.conn_id!r}."
            )
        return str(resolved)

    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the credentials (never query parameters)."""
        return {}

    @cached_property
    def session(self) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers.update({"Accept": "application/json", **self.auth_headers()})
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    @cached_property
    def limit(self) -> AccountLimit:
        """The limit for this account, shared by every hook using it: in this process, or on the
        Redis the connection's ``limit_backend`` extra names (every process and machine).

        APIs without a documented client-side rule still get one: a 429's Retry-After or a
        used-up ``X-RateLimit`` window then pauses every caller of the account, not just one.
        """
        max_in_flight, max_calls, period = self.request_limit or (None, None, 0.0)
        backend = self.extra("limit_backend")
        if not backend:
            return shared_limit(self.account_key, lambda: RequestLimit(max_in_flight, max_calls, period))
        from airflow_provider_analytics_export.transport.redis_limits import RedisLimit, backend_url

        url = backend_url(backend, self.get_connection, self._where)
        return shared_limit(
            self.account_key,
            lambda: RedisLimit(url, self.account_key, max_in_flight, max_calls, period, self._where),
            backend=url,
        )

    @cached_property
    def account_key(self) -> str:
        """Who the API counts requests against: type, host and the login (else a digest of the key).

        Two connection ids holding the same credentials share one account; the key itself
        holds no secret.
        """
        conn = self.connection
        who = conn.login or (
            hashlib.sha256(conn.password.encode()).hexdigest()[:16] if conn.password else None
        )
        return f"{self.conn_type}|{self.base_url}|{who or self.conn_id}"

    def observe_rate_headers(self, status: int, headers: Mapping[str, str]) -> None:
        """Pause every caller of the account until the reset when the API reports its window used up.

        A 429 is left to :meth:`api_error`, where Retry-After (when sent) decides the pause.
        """
        spec = self.rate_limit_headers
        if spec is None or status == 429 or not spec.exhausted(headers):
            return
        wait = spec.seconds_until_reset(headers)
        if wait:
            self.log.info("%s reports its rate-limit window used up; pausing %.1f s.", self.api_name, wait)
            self.limit.pause(wait)

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """How long a 429 asks us to wait: Retry-After, else the rate-limit window's reset."""
        seconds = parse_retry_after(headers.get("Retry-After"))
        if seconds is None and self.rate_limit_headers is not None:
            seconds = self.rate_limit_headers.seconds_until_reset(headers)
        return seconds

    # -- requests -------------------------------------------------------------------
    def request(
        self,
        method: str,
        endpoint: str,
        *,
        parse: Callable[[requests.Response], T] = lambda response: loads(response.content),
        url: str | None = None,
        authenticated: bool = True,
        **kwargs: Any,
    ) -> T:
        """Send one API call with retries and return ``parse(response)``.

        ``parse`` runs inside the retry loop, so a body cut short or not decodable is
        retried like a 5xx. ``endpoint`` is what errors and logs show; ``url`` overrides
        the URL actually requested (e.g. a download link whose token must not be logged).
        """
        retrying = tenacity.Retrying(**self.retry_policy())
        target = url or f"{self.base_url}{endpoint}"
        return retrying(self._send_once, method, endpoint, parse, target, authenticated, kwargs)

    def _send_once(
        self,
        method: str,
        endpoint: str,
        parse: Callable[[requests.Response], T],
        url: str,
        authenticated: bool,
        kwargs: dict[str, Any],
    ) -> T:
        import requests

        send = self.session.request if authenticated else requests.request
        kwargs.setdefault("timeout", self.timeout)
        with self.limit.slot():
            TRANSPORT_COUNTS.add(requests=1)
            try:
                response = send(method, url, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise self.tls_error(exc, method, endpoint, url) from None
            except _transport_errors() as exc:
                raise TransientApiError(self.api_name, method, endpoint, None, _describe(exc)) from None
            self.observe_rate_headers(response.status_code, response.headers)
            self._raise_for_status(method, endpoint, response)
            undecodable: tuple[type[Exception], ...] = (ValueError, *_transport_errors())
            try:
                return parse(response)
            except undecodable as exc:
                raise TransientApiError(
                    self.api_name,
                    method,
                    endpoint,
                    response.status_code,
                    f"truncated or undecodable response body ({_describe(exc)})",
                ) from None

    def require(
        self,
        body: Any,
        *path: str | int,
        method: str,
        endpoint: str,
        status: int | None,
        kind: type | None = None,
    ) -> Any:
        """``body[path[0]][path[1]]...``, or :class:`MalformedResponseError` naming the missing field.

        A documented field missing from a complete answer is the API's fault and asking
        again would get the same body, so it fails at once (even inside a ``parse``
        callback) with an error naming API, endpoint, status and the field, never the body.

        :param body: the decoded response body.
        :param path: keys (str) and list indexes (int) leading to the field.
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
                raise MalformedResponseError(self.api_name, method, endpoint, status, message)
            value = value[key]
        if kind is not None and not isinstance(value, kind):
            message = f"response field {_field(path)!r} is {type(value).__name__}, not {kind.__name__}"
            raise MalformedResponseError(self.api_name, method, endpoint, status, message)
        return value

    def body_reader(self, response: requests.Response, method: str, endpoint: str) -> Callable[..., Any]:
        """:meth:`require` bound to one response's JSON body: ``body_reader(...)("exports", "total")``."""
        return partial(
            self.require,
            loads(response.content),
            method=method,
            endpoint=endpoint,
            status=response.status_code,
        )

    def series_rows(
        self,
        response: requests.Response,
        method: str,
        endpoint: str,
        row_field: str,
        succeeded: Callable[[dict[str, Any]], bool],
    ) -> list[dict[str, Any]]:
        """The ``data`` list of a time-series answer, every row carrying ``row_field``.

        Braze and Peer5 answer 200 with a status in the body (``message``/``error``); a body
        that reports failure, or has no ``data`` list, raises with the API's own message.
        """
        field = self.body_reader(response, method, endpoint)
        body = field()
        if not isinstance(body, dict) or not succeeded(body) or not isinstance(body.get("data"), list):
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiError(
                self.api_name,
                method,
                endpoint,
                response.status_code,
                f"export failed: {message or 'no data list in the response'}",
            )
        for index in range(len(body["data"])):
            field("data", index, row_field)
        return list(body["data"])

    def file_chunks(
        self,
        response: requests.Response,
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
            raise MalformedResponseError(self.api_name, method, endpoint, response.status_code, message)
        chunks = response.iter_content(chunk_size)
        head = b""
        for chunk in chunks:
            head += chunk
            if b"\n" in head.lstrip() or len(head) >= chunk_size:
                break
        if not start.match(head):
            message = f"response body does not start with {expected}"
            raise MalformedResponseError(self.api_name, method, endpoint, response.status_code, message)
        yield head
        yield from chunks

    # -- async (triggers) -----------------------------------------------------------
    async def aload_connection(self) -> None:
        """Fetch the connection without blocking the event loop; ``.connection`` then reuses it."""
        if "connection" in self.__dict__:
            return
        try:  # masks secrets off the event loop before Airflow 3.3.2
            from airflow.providers.common.compat.connection import get_async_connection
        except ImportError:
            conn = await BaseHook.aget_connection(self.conn_id)
        else:
            conn = await get_async_connection(self.conn_id, type(self))
        for secret in (conn.password, conn.login):
            if secret:
                mask_secret(secret)
        self.__dict__["connection"] = conn

    async def arequest(
        self, session: aiohttp.ClientSession, method: str, endpoint: str, **kwargs: Any
    ) -> Any:
        """Async twin of :meth:`request` for triggers: same retry policy and error mapping; returns JSON.

        The process-wide :attr:`limit` is thread-based and not applied here.
        """
        await self.aload_connection()
        retrying = tenacity.AsyncRetrying(**self.retry_policy())
        return await retrying(self._asend_once, session, method, endpoint, kwargs)

    async def _asend_once(
        self, session: aiohttp.ClientSession, method: str, endpoint: str, kwargs: dict[str, Any]
    ) -> Any:
        import aiohttp

        connect, read = self.timeout
        timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
        headers = {"Accept": "application/json", **self.auth_headers()}
        TRANSPORT_COUNTS.add(requests=1)
        try:
            async with session.request(
                method, f"{self.base_url}{endpoint}", headers=headers, timeout=timeout, **kwargs
            ) as response:
                raw = await response.read()
                self.observe_rate_headers(response.status, response.headers)
                try:
                    body: Any = loads(raw) if raw else None
                except ValueError:
                    body = None
                if response.status >= 400:
                    text = "" if body is not None else raw.decode(errors="replace").strip()
                    raise self.api_error(
                        method,
                        endpoint,
                        response.status,
                        body,
                        text or (response.reason or ""),
                        response.headers,
                    )
        except aiohttp.ClientSSLError as exc:
            raise self.tls_error(exc, method, endpoint, f"{self.base_url}{endpoint}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientApiError(self.api_name, method, endpoint, None, _describe(exc)) from None
        if body is None:
            raise TransientApiError(
                self.api_name, method, endpoint, response.status, "truncated or undecodable response body"
            )
        return body

    def _raise_for_status(self, method: str, endpoint: str, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        try:
            body: Any = loads(response.content)
        except ValueError:
            body = None
        except _transport_errors():
            body = None
        text = "" if body is not None else _safe_text(response)
        raise self.api_error(method, endpoint, status, body, text or response.reason or "", response.headers)

    def api_error(
        self, method: str, endpoint: str, status: int, body: Any, text: str, headers: Mapping[str, str]
    ) -> ApiError:
        """The exception for an error response; shared by the sync and async transports.

        A 429 pauses every caller of the account for as long as the API asked.
        """
        message = api_error_message(body, text)
        # Rate-limit headers may come on every answer: only a 429 waits for their reset; any other
        # status waits only for a Retry-After the API sent with it (e.g. a 503's).
        retry_after = (
            self.retry_after(headers) if status == 429 else parse_retry_after(headers.get("Retry-After"))
        )
        error_class: type[ApiError]
        if status == 429:
            error_class = RateLimitedError
            if retry_after:
                self.limit.pause(retry_after)
        elif status >= 500:
            error_class = TransientApiError
        elif status in (401, 403):
            error_class = AuthenticationError
        else:
            error_class = InvalidRequestError
        return error_class(self.api_name, method, endpoint, status, message, retry_after)

    def retry_policy(self) -> dict[str, Any]:
        """tenacity arguments shared by the sync transport and async callers (e.g. triggers)."""
        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": _retry_wait,
            "retry": tenacity.retry_if_exception_type((TransientApiError, RateLimitedError)),
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def tls_error(self, exc: BaseException, method: str, endpoint: str, url: str) -> ApiError:
        """A failed TLS handshake: :class:`TlsHandshakeError` unless another attempt could succeed."""
        reason = _permanent_tls_failure(exc)
        if reason is None:
            return TransientApiError(self.api_name, method, endpoint, None, _describe(exc))
        return TlsHandshakeError(self.api_name, method, endpoint, None, self._tls_message(url, reason))

    def _tls_message(self, url: str, reason: str) -> str:
        """Why the handshake failed and what to change, without the URL's path or query."""
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        message = f"TLS handshake with {where} failed ({reason})"
        if reason.startswith("certificate"):
            return f"{message}: the server's certificate does not verify."
        hint = "if the server speaks plain HTTP, set the connection's host to http://..."
        if "://" not in (self.connection.host or ""):
            return f"{message}: the connection's host has no scheme, so https was used; {hint}"
        return f"{message}: the server does not speak TLS on that port; {hint}"

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        TRANSPORT_COUNTS.add(retries=1)
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("%s; retry %d/%d in %.1f s", exc, state.attempt_number, self.max_attempts - 1, wait)

    # -- connection test ------------------------------------------------------------
    def check_connection(self) -> None:
        """Make one cheap, read-only, authenticated call; raise ApiError on failure."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's "Test" button.

        On failure: API, method, endpoint, HTTP status and the API's own error text, so the
        user knows which call failed and why without reading the api-server's logs.
        """
        try:
            self.check_connection()
        except ApiError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI wants a message, not a traceback
            return False, str(exc)
        return True, f"Connection to {self.api_name} at {self.base_url} works."


def _describe(exc: BaseException) -> str:
    """What went wrong, without the exception's text (it can hold a URL with a download token)."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "response body cut short (ChunkedEncodingError)"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed or dropped ({type(exc).__name__})"
    return type(exc).__name__


def _permanent_tls_failure(exc: BaseException) -> str | None:
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


def _field(path: tuple[str | int, ...]) -> str:
    """``("series", 0, "data")`` -> ``series[0].data``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else key
    return text or "(body)"


def _safe_text(response: requests.Response) -> str:
    try:
        text = response.text
    except _transport_errors():
        return ""
    if "<html" in text[:200].lower():
        return f"HTML error page ({response.headers.get('Content-Type', 'unknown type')})"
    return text.strip()
