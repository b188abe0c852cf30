"""Client-side limits that encode each API's documented rules, and what the API reports.

Limits are shared by every hook instance that talks to the same account in one process
(several tasks in one worker, or a TaskFlow task using threads), because the API counts
per account, not per hook object. A connection whose ``limit_backend`` extra names a Redis
server holds them across every process and machine instead
(:mod:`airflow_provider_analytics_export.transport.redis_limits`). Where an API reports its window in
``X-RateLimit-*`` headers (:class:`RateLimitHeaders`), every caller of the account pauses
when it is used up, so clients in other processes slow us down instead of causing 429s.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

#: Seconds to wait before looking again when the whole window is still in flight.
IN_FLIGHT_RECHECK = 0.05


@dataclass(frozen=True)
class RateLimitHeaders:
    """Where an API reports its own limit state, so we slow down before it answers 429.

    :param remaining: header with the requests left in the current window.
    :param reset: header with when the window resets.
    :param reset_is: ``seconds`` (seconds left, as OpenPanel sends) or ``epoch`` (UTC epoch
        seconds, as Braze sends).
    :param reserve: pause once ``remaining`` is at or below this (requests other threads or
        processes may already have in flight).
    """

    remaining: str = "X-RateLimit-Remaining"
    reset: str = "X-RateLimit-Reset"
    reset_is: Literal["seconds", "epoch"] = "seconds"
    reserve: int = 0

    def seconds_until_reset(self, headers: Mapping[str, str], now: float | None = None) -> float | None:
        """Seconds until the window resets, or None when the header is absent or unreadable."""
        value = _number(headers.get(self.reset))
        if value is None:
            return None
        if self.reset_is == "epoch":
            value -= time.time() if now is None else now
        return max(0.0, value)

    def exhausted(self, headers: Mapping[str, str]) -> bool:
        """True when the API says no more requests fit in this window (beyond the reserve)."""
        remaining = _number(headers.get(self.remaining))
        return remaining is not None and remaining <= self.reserve


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class AccountLimit(Protocol):
    """What the transport needs of a limit, in-process (:class:`RequestLimit`) or shared (Redis)."""

    def slot(self) -> AbstractContextManager[None]:
        """Hold a request slot for the duration of one request/response exchange."""
        ...

    def pause(self, seconds: float) -> None:
        """Make every caller of the account wait ``seconds``."""
        ...


class RequestLimit:
    """Concurrency and/or sliding-window rate limit for one API account, in this process.

    :param max_in_flight: requests allowed open at once (Browsee allows one), or None.
    :param max_calls: requests allowed per ``period`` seconds (OpenPanel: 100 per 10 s), or None.
    :param period: the rate window in seconds.
    :param margin: seconds added to the window so clock skew between us and the server
        never lets the server count one request too many.
    """

    def __init__(
        self,
        max_in_flight: int | None = None,
        max_calls: int | None = None,
        period: float = 1.0,
        margin: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_calls = max_calls
        self.period = period + margin
        self._clock = clock
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight else None
        self._lock = threading.Lock()
        #: When each request of the window was answered, oldest first; ``inf`` while in flight.
        self._sent: list[float] = []
        self._paused_until = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a request slot for the duration of one request/response exchange.

        A request counts towards the window from when its response arrived: the server saw
        it at some moment before that, which we cannot know, so counting from the response
        is the only stamp that never lets the server's own window hold one request too many
        (a slow first request would otherwise shift the server's window past ours).
        """
        if self._slots is not None:
            self._slots.acquire()
        try:
            self._wait_for_rate()
            try:
                yield
            finally:
                self._answered()
        finally:
            if self._slots is not None:
                self._slots.release()

    def pause(self, seconds: float) -> None:
        """Make every caller wait ``seconds`` (the server said Retry-After, or its window is used up)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _wait_for_rate(self) -> None:
        """Wait for room in the window, then reserve a place (an in-flight request never expires)."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0 and self.max_calls is not None:
                    while self._sent and now - self._sent[0] >= self.period:
                        self._sent.pop(0)
                    if len(self._sent) >= self.max_calls:
                        oldest = self._sent[0]
                        wait = IN_FLIGHT_RECHECK if oldest == math.inf else self.period - (now - oldest)
                if wait <= 0:
                    if self.max_calls is not None:
                        self._sent.append(math.inf)
                    return
            self._sleep(wait)

    def _answered(self) -> None:
        """Turn this request's reservation into the moment its answer (or failure) arrived."""
        if self.max_calls is None:
            return
        with self._lock:
            self._sent.remove(math.inf)
            bisect.insort(self._sent, self._clock())


_registry: dict[tuple[str | None, str], AccountLimit] = {}
_registry_lock = threading.Lock()


def shared_limit(key: str, factory: Callable[[], AccountLimit], backend: str | None = None) -> AccountLimit:
    """Return the process-wide limit for ``key`` (an API account) on ``backend``, creating it once.

    ``backend`` (a shared backend's URL, None for in-process) is part of the key, so a
    connection moved to Redis never keeps using its old in-process limit. A factory that
    raises (Redis unreachable) caches nothing: the next task tries again.
    """
    with _registry_lock:
        limit = _registry.get((backend, key))
        if limit is None:
            limit = _registry[(backend, key)] = factory()
        return limit
