"""The shared limit backend: one API account's rules held in Redis for every process and machine.

Chosen per connection by the extra ``limit_backend`` (a ``redis://`` / ``rediss://`` /
``unix://`` URL, or the id of an Airflow ``redis`` connection). Each rule uses a well-kept
building block rather than hand-written locking:

* a concurrency cap (Browsee's one open request) is a redis-py :class:`redis.lock.Lock` per
  slot: a lease with an expiry, renewed by a helper thread while the request is open, so a
  SIGKILLed holder frees the account within :data:`LEASE_SECONDS`;
* a request rate (OpenPanel's 100 per 10 s) is our copy of the API's fixed window
  (:func:`.window_wait`) in milliseconds, checked and counted in one Lua script on the Redis
  clock, and ended one API window after its first answer by another: the ``limits`` library
  counts whole seconds, which made OpenPanel's window 100 per 11 s, and knows no answers;
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
from airflow_provider_analytics_export.transport.limits import (
    UNANSWERED_POLL,
    UNANSWERED_SECONDS,
    WINDOW_MARGIN,
    Exchange,
    RequestRules,
    explained_by_own_count,
)

if TYPE_CHECKING:
    import redis

#: How long a concurrency slot stays held after its holder stopped renewing it (e.g. was killed).
LEASE_SECONDS = 10.0
#: Poll interval while another process holds the slot.
POLL_SECONDS = 0.02
#: Seconds to wait for Redis to accept a connection or answer, before failing loudly.
REDIS_TIMEOUT = 5.0
BACKEND_SCHEMES = ("redis", "rediss", "unix")

# Our copy of the API's fixed window (see limits.window_wait), on the Redis clock in ms: a hash
# KEYS[1] {start, count, ends}; KEYS[2] the pause. ARGV = (max calls, per ms, margin ms, unanswered
# ms, poll ms). ``first`` is the window's id: its answers name it (_ANSWER_SCRIPT). While no answer
# is in, the hash expires UNANSWERED_SECONDS after the window could end: a window's requests lost
# with their process never hold the account longer.
_WINDOW_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, per, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local unanswered, poll = tonumber(ARGV[4]), tonumber(ARGV[5])
local first = tonumber(redis.call('HGET', KEYS[1], 'start') or '0')
local start = math.min(first, now)
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local ends = math.min(tonumber(redis.call('HGET', KEYS[1], 'ends') or '0'), now + per)
local last = start + per + unanswered
if ends > 0 then last = ends end
"""
# Returns {0, id} when this send was counted in a window waiting for its first answer, {0, 0}
# when counted in one that has it, else {milliseconds to wait, 0}.
_HIT_SCRIPT = (
    """
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {pause, 0} end
"""
    + _WINDOW_PRELUDE
    + """
if count == 0 or now >= last then
    redis.call('HSET', KEYS[1], 'start', now, 'count', 1, 'ends', 0)
    redis.call('PEXPIRE', KEYS[1], per + unanswered)
    return {0, now}
end
if count < max and now <= start + per - margin then
    redis.call('HINCRBY', KEYS[1], 'count', 1)
    if ends > 0 then return {0, 0} end
    return {0, first}
end
if ends > 0 then return {math.max(1, ends - now), 0} end
return {math.max(1, math.min(poll, last - now)), 0}
"""
)
# ARGV[6] = the window's id: its first answer ends it one API window later (limits.window_answered).
_ANSWER_SCRIPT = (
    _WINDOW_PRELUDE
    + """
if count > 0 and first == tonumber(ARGV[6]) and ends == 0 then
    redis.call('HSET', KEYS[1], 'ends', now + per)
    redis.call('PEXPIRE', KEYS[1], per)
end
"""
)
# Requests the open window holds (0 once it ended).
_COUNT_SCRIPT = _WINDOW_PRELUDE + "if count > 0 and now < last then return count end return 0"
# ARGV[6] = the pause in ms. Set it only if it ends later than the one already set (PTTL is -2
# without a key, -1 without expiry: never written here), and close the window by its end.
_PAUSE_SCRIPT = (
    _WINDOW_PRELUDE
    + """
local pause = tonumber(ARGV[6])
if redis.call('PTTL', KEYS[2]) < pause then
    redis.call('SET', KEYS[2], '1', 'PX', pause)
end
if max > 0 and count > 0 and now + pause < last then
    redis.call('HSET', KEYS[1], 'count', max, 'ends', now + pause)
    redis.call('PEXPIRE', KEYS[1], pause)
end
"""
)


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
    """One API account's limit held in Redis; same interface as :class:`.MachineLimit`.

    :param url: the Redis URL.
    :param account: who the API counts against (hashed into the key names, so Redis holds no login).
    :param rules: the API's rules for one account, kept across every process.
    :param where: the connection, for error messages.
    :param lease: seconds a dead holder keeps its slot (renewed every third of it while alive).
    """

    def __init__(
        self,
        url: str,
        account: str,
        rules: RequestRules | None = None,
        where: str = "limit backend",
        lease: float = LEASE_SECONDS,
    ) -> None:
        import redis

        self.url, self.where, self.lease = url, where, lease
        self.rules = rules or RequestRules()
        self.max_in_flight, self.max_calls = self.rules.max_in_flight, self.rules.max_calls
        self._prefix = "analytics-export:" + hashlib.sha256(account.encode()).hexdigest()[:32]
        self._keys = [f"{self._prefix}:window", f"{self._prefix}:pause"]
        per = self.rules.per_seconds
        self._window_args = [
            self.max_calls or 0,
            math.ceil((per or 0) * 1000),
            math.ceil(WINDOW_MARGIN * 1000),
            math.ceil(UNANSWERED_SECONDS * 1000),
            math.ceil(UNANSWERED_POLL * 1000),
        ]
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        with self._reachable():
            self.client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            self.client.ping()
            self._pause_script = self.client.register_script(_PAUSE_SCRIPT)
            self._hit_script = self.client.register_script(_HIT_SCRIPT)
            self._count_script = self.client.register_script(_COUNT_SCRIPT)
            self._answer_script = self.client.register_script(_ANSWER_SCRIPT)

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
    def slot(self) -> Iterator[Exchange]:
        """Hold a request slot (a renewed lease, if the account caps open requests) for one exchange."""
        with self._reachable():
            lease = self._acquire() if self.max_in_flight else None
        try:
            with self._reachable():
                opened = self._wait_for_rate()
            with Exchange(None if opened is None else lambda: self._answered(opened)) as exchange:
                yield exchange
        finally:
            if lease is not None:
                lease.release()

    def pause(self, seconds: float) -> None:
        """Make every caller in every process wait ``seconds`` from now (on the Redis clock)."""
        with self._reachable():
            self._pause_script(keys=self._keys, args=[*self._window_args, max(1, math.ceil(seconds * 1000))])

    def window_used_up(self, seconds: float, remaining: float | None = None) -> None:
        """Pause every process until the API's reset, unless the shared log's own sends explain it."""
        if self.max_calls is not None:
            with self._reachable():
                sent = int(self._count_script(keys=self._keys, args=self._window_args))
            if explained_by_own_count(sent, self.rules, remaining):
                return
        self.pause(seconds)

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

    def _wait_for_rate(self) -> int | None:
        """Wait until a send is allowed (and counted); the window's id while it waits for its first answer."""
        while True:
            if self.max_calls is None:
                wait_ms, opened = self.client.pttl(self._keys[1]), 0
            else:
                wait_ms, opened = self._hit_script(keys=self._keys, args=self._window_args)
            if wait_ms <= 0:
                return int(opened) or None
            time.sleep(wait_ms / 1000)

    def _answered(self, opened: int) -> None:
        """Report the window's first answer; Redis failing now leaves the window to its presumed end.

        The answer in hand is good: losing it to the backend would only make the next window
        wait longer (:data:`UNANSWERED_SECONDS`), and the next send fails loudly if Redis is gone.
        """
        with suppress(*self._errors):
            self._answer_script(keys=self._keys, args=[*self._window_args, opened])


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
