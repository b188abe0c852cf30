"""The shared limit backend: one API account's rules held in Redis for every process and machine.

Chosen per connection by the extra ``limit_backend`` (a ``redis://`` / ``rediss://`` /
``unix://`` URL, or the id of an Airflow ``redis`` connection). Each rule uses a well-kept
building block rather than hand-written locking:

* a concurrency cap (Browsee's one open request) is a redis-py :class:`redis.lock.Lock` per
  slot: a lease with an expiry, renewed by a helper thread while the request is open, so a
  SIGKILLed holder frees the account within :data:`LEASE_SECONDS`;
* a request rate (OpenPanel's 100 per 10 s) is a moving window of the ``limits`` library;
* a pause (Retry-After, a used-up ``X-RateLimit`` window) is one key whose time-to-live is the
  pause, measured on the Redis server's clock, so every process waits for the same instant.

Redis unreachable is a :class:`LimitBackendError` naming the connection and the backend
(without its password), never an unlimited client. This module is imported only when a
connection names a backend, so DAG parsing never imports redis.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow_provider_analytics_export.exceptions import LimitBackendError

if TYPE_CHECKING:
    import redis

#: How long a concurrency slot stays held after its holder stopped renewing it (e.g. was killed).
LEASE_SECONDS = 10.0
#: Seconds added to a rate window (then rounded up to whole seconds, the ``limits`` granularity):
#: the window is counted at send time here and at arrival time by the API, on other clocks.
WINDOW_MARGIN = 0.1
#: Poll interval while another process holds the slot.
POLL_SECONDS = 0.02
#: Seconds to wait for Redis to accept a connection or answer, before failing loudly.
REDIS_TIMEOUT = 5.0
BACKEND_SCHEMES = ("redis", "rediss", "unix")

# Set the pause only if it ends later than the one already set: PTTL is -2 (no key) or -1
# (no expiry, never written here), both below any pause.
_PAUSE_SCRIPT = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
"""


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for errors and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = f"{user}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def backend_url(value: str, get_connection: Callable[[str], Any], where: str) -> str:
    """The Redis URL named by a ``limit_backend`` extra: a URL as given, or an Airflow connection id.

    An Airflow ``redis`` connection gives host, port (6379), login, password and the ``db``
    and ``ssl`` extras, the fields Airflow's Redis provider reads. Passwords are masked in logs.
    """
    from airflow.sdk.log import mask_secret

    if "://" in value:
        parts = urlsplit(value)
        if parts.password:
            mask_secret(parts.password)
        if parts.scheme not in BACKEND_SCHEMES:
            raise LimitBackendError(
                f"{where}: extra 'limit_backend'={redacted(value)!r} is invalid; use a Redis URL "
                f"({', '.join(s + '://' for s in BACKEND_SCHEMES)}) or the id of an Airflow redis connection."
            )
        return value
    try:
        conn = get_connection(value)
    except Exception as exc:  # Airflow raises its own not-found type
        raise LimitBackendError(
            f"{where}: extra 'limit_backend'={value!r} is neither a Redis URL nor a connection id "
            f"Airflow knows ({type(exc).__name__})."
        ) from None
    if conn.conn_type != "redis":
        raise LimitBackendError(
            f"{where}: limit_backend connection {value!r} has type {conn.conn_type!r}, not 'redis'."
        )
    if conn.password:
        mask_secret(conn.password)
    extra = conn.extra_dejson or {}
    scheme = "rediss" if str(extra.get("ssl", "")).lower() in ("true", "1") else "redis"
    auth = ""
    if conn.password:
        auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password, safe='')}@"
    elif conn.login:
        auth = f"{quote(conn.login, safe='')}@"
    return f"{scheme}://{auth}{conn.host or 'localhost'}:{conn.port or 6379}/{int(extra.get('db') or 0)}"


class RedisLimit:
    """One API account's limit held in Redis; same interface as :class:`.RequestLimit`.

    :param url: the Redis URL.
    :param account: who the API counts against (hashed into the key names, so Redis holds no login).
    :param max_in_flight: requests allowed open at once across every process, or None.
    :param max_calls: requests allowed per ``period`` seconds across every process, or None.
    :param period: the rate window in seconds.
    :param where: the connection, for error messages.
    :param lease: seconds a dead holder keeps its slot (renewed every third of it while alive).
    """

    def __init__(
        self,
        url: str,
        account: str,
        max_in_flight: int | None = None,
        max_calls: int | None = None,
        period: float = 1.0,
        where: str = "limit backend",
        lease: float = LEASE_SECONDS,
    ) -> None:
        import redis
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self.url, self.where, self.lease = url, where, lease
        self.max_in_flight, self.max_calls = max_in_flight, max_calls
        self._prefix = "analytics-export:" + hashlib.sha256(account.encode()).hexdigest()[:32]
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        with self._reachable():
            self.client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            self.client.ping()
            self._pause_script = self.client.register_script(_PAUSE_SCRIPT)
            storage = RedisStorage(url, connection_pool=self.client.connection_pool)
        self._window = MovingWindowRateLimiter(storage)
        seconds = max(1, math.ceil(period + WINDOW_MARGIN))
        self._rate = RateLimitItemPerSecond(max_calls, seconds) if max_calls else None

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn any Redis failure into one error naming the connection and the backend."""
        try:
            yield
        except self._errors as exc:
            raise LimitBackendError(
                f"{self.where}: limit backend {redacted(self.url)} is unreachable or failed "
                f"({type(exc).__name__}: {str(exc).replace(self.url, redacted(self.url))[:200]}); "
                "not sending requests without the account's limit."
            ) from None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a request slot (a renewed lease, if the account caps open requests) for one exchange."""
        with self._reachable():
            lease = self._acquire() if self.max_in_flight else None
        try:
            with self._reachable():
                self._wait_for_rate()
            yield
        finally:
            if lease is not None:
                lease.release()

    def pause(self, seconds: float) -> None:
        """Make every caller in every process wait ``seconds`` from now (on the Redis clock)."""
        with self._reachable():
            self._pause_script(keys=[f"{self._prefix}:pause"], args=[max(1, math.ceil(seconds * 1000))])

    def _acquire(self) -> _Lease:
        from redis.lock import Lock

        slots = [
            Lock(self.client, f"{self._prefix}:slot:{i}", timeout=self.lease, thread_local=False)
            for i in range(self.max_in_flight or 0)
        ]
        while True:
            for lock in slots:
                if lock.acquire(blocking=False):
                    return _Lease(lock, self.lease / 3)
            time.sleep(POLL_SECONDS)

    def _wait_for_rate(self) -> None:
        while True:
            wait = self.client.pttl(f"{self._prefix}:pause") / 1000
            if wait <= 0:
                if self._rate is None or self._window.hit(self._rate, self._prefix):
                    return
                reset, _ = self._window.get_window_stats(self._rate, self._prefix)
                wait = max(POLL_SECONDS, reset - time.time())
            time.sleep(wait)


class _Lease:
    """A held slot, renewed every ``every`` seconds by a daemon thread until released."""

    def __init__(self, lock: redis.lock.Lock, every: float) -> None:
        self._lock = lock
        self._released = threading.Event()
        self._renewer = threading.Thread(target=self._renew, args=(every,), daemon=True)
        self._renewer.start()

    def _renew(self, every: float) -> None:
        import redis

        while not self._released.wait(every):
            try:
                self._lock.reacquire()
            except redis.RedisError:
                return  # lost (Redis down or the lease expired): the request itself goes on

    def release(self) -> None:
        import redis

        self._released.set()
        self._renewer.join()
        with suppress(redis.RedisError):  # already expired or Redis gone: the lease frees itself
            self._lock.release()
