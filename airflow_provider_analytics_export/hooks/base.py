"""What an API hook is: its Airflow connection, extras, base URL, credentials and account limit.

Sending, retrying and reading answers live in :mod:`airflow_provider_analytics_export.transport`;
the hook hands calls to it, so the five API hooks only describe their API: default host,
limits, credentials and endpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from airflow.sdk.log import mask_secret

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.compat import BaseHook
from airflow_provider_analytics_export.exceptions import ApiError
from airflow_provider_analytics_export.extras import extra_fields
from airflow_provider_analytics_export.transport import client, responses
from airflow_provider_analytics_export.transport.account import ApiAccount
from airflow_provider_analytics_export.transport.errors import error_for_status
from airflow_provider_analytics_export.transport.limits import (
    AccountLimit,
    RateLimitHeaders,
    RequestRules,
    shared_limit,
)

if TYPE_CHECKING:
    import aiohttp
    import requests

T = TypeVar("T")


class AnalyticsApiHook(BaseHook):
    """One API account: its connection, credentials, base URL, timeouts and shared limit.

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
    #: The API's documented rules per account, kept on the client side (None: no rule of its own).
    request_limit: ClassVar[RequestRules | None] = None
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
        session.headers.update(client.request_headers(self.auth_headers()))
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    @cached_property
    def limit(self) -> AccountLimit:
        """The limit for this account, shared by every hook using it: on this machine (every
        process of every worker on the host, no configuration), or on the Redis the connection's
        ``limit_backend`` extra names (every process and machine).

        APIs without a documented client-side rule still get one: a 429's Retry-After or a
        used-up ``X-RateLimit`` window then pauses every caller of the account, not just one.
        """
        rules = self.request_limit or RequestRules()
        backend = self.extra("limit_backend")
        if not backend:
            from airflow_provider_analytics_export.transport.machine_limits import MachineLimit, limits_dir

            directory = limits_dir()
            return shared_limit(
                self.account_key,
                lambda: MachineLimit(self.account_key, rules, directory, self._where),
                backend=str(directory),
            )
        from airflow_provider_analytics_export.transport.redis_limits import RedisLimit, backend_url

        url = backend_url(backend, self.get_connection, self._where)
        return shared_limit(
            self.account_key,
            lambda: RedisLimit(url, self.account_key, rules, self._where),
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

    # -- requests -------------------------------------------------------------------
    def api_account(self) -> ApiAccount:
        """This hook's account as the transport sees it; built per call, so it is always current."""
        return ApiAccount(
            api_name=self.api_name,
            where=self._where,
            base_url=self.base_url,
            host_has_scheme="://" in (self.connection.host or ""),
            headers=client.request_headers(self.auth_headers()),
            timeout=self.timeout,
            max_attempts=self.max_attempts,
            limit=self.limit,
            rate_limit_headers=self.rate_limit_headers,
            max_server_wait=float(self.extra("max_server_wait")),
            error_for=self.api_error,
            log=self.log,
        )

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        parse: Callable[[requests.Response], T] = lambda response: loads(response.content),
        url: str | None = None,
        authenticated: bool = True,
        retry: bool = True,
        **kwargs: Any,
    ) -> T:
        """Send one API call with retries and return ``parse(response)``.

        ``parse`` runs inside the retry loop, so a body cut short or not decodable is
        retried like a 5xx. ``endpoint`` is what errors and logs show; ``url`` overrides
        the URL actually requested (e.g. a download link whose token must not be logged).
        ``retry=False`` sends once, for a call that is not safe to repeat blindly.
        """
        session = self.session if authenticated else None
        return client.send(self.api_account(), session, method, endpoint, parse, url, retry, kwargs)

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

        Fails at once, even inside a ``parse`` callback: see
        :func:`~airflow_provider_analytics_export.transport.responses.require`.
        """
        return responses.require(
            body, *path, api=self.api_name, method=method, endpoint=endpoint, status=status, kind=kind
        )

    def body_reader(self, response: requests.Response, method: str, endpoint: str) -> Callable[..., Any]:
        """:meth:`require` bound to one response's JSON body: ``body_reader(...)("exports", "total")``."""
        return responses.body_reader(response, self.api_name, method, endpoint)

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

        It does not wait on :attr:`limit` (which blocks threads): neither its slots nor a pause
        another caller set. A 429 it meets pauses the account's other callers and is itself
        waited out by the retry policy.
        """
        await self.aload_connection()
        return await client.asend(self.api_account(), session, method, endpoint, kwargs)

    def api_error(
        self, method: str, endpoint: str, status: int, body: Any, text: str, headers: Mapping[str, str]
    ) -> ApiError:
        """The exception for an error response, built by both senders (which act on it).

        Hooks whose API has its own error envelope override this.
        """
        return error_for_status(
            self.api_name, method, endpoint, status, body, text, headers, self.rate_limit_headers
        )

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
