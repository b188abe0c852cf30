"""Client-side limits that encode each API's documented rules, and what the API reports.

An API counts requests per account, not per hook object or per process, so a limit is shared
by every hook that talks to one account: by default on this machine (every process of every
worker on the host, :mod:`~airflow_provider_analytics_export.transport.machine_limits`), or
on the Redis a connection's ``limit_backend`` extra names, across machines
(:mod:`~airflow_provider_analytics_export.transport.redis_limits`). Where an API reports its
window in ``X-RateLimit-*`` headers (:class:`RateLimitHeaders`), every caller of the account
pauses when that report shows others spent the window, so they slow us down instead of
causing 429s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

#: Seconds before a rate window's end, counted from its first send, after which none of its requests
#: is sent: one sent later could reach the server after the server's window closed and open another.
WINDOW_MARGIN = 0.1
#: Seconds a rate window may wait for its first answer before it is presumed over. A live process
#: reports every exchange's end (answer, error or timeout, by default within 70 s); only one killed
#: mid-request never does, and the account's next window must not wait for it forever.
UNANSWERED_SECONDS = 60.0
#: Seconds between looks at a window whose requests are all sent and none answered yet.
UNANSWERED_POLL = 0.01


@dataclass(frozen=True)
class RequestRules:
    """An API's documented rules for one account, kept on the client side.

    ``RequestRules(max_in_flight=1)``: one open request at a time (Browsee).
    ``RequestRules(max_calls=100, per_seconds=10)``: 100 requests per 10 s (OpenPanel).
    ``RequestRules()``: no rule of its own; pauses the API asks for still apply.
    """

    max_in_flight: int | None = None
    max_calls: int | None = None
    per_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"RequestRules: max_in_flight must be >= 1 or None, not {self.max_in_flight!r}.")
        if (self.max_calls is None) != (self.per_seconds is None):
            raise ValueError("RequestRules: max_calls and per_seconds go together (both set or both None).")
        if self.max_calls is not None and (self.max_calls < 1 or (self.per_seconds or 0) <= 0):
            raise ValueError(
                f"RequestRules: max_calls must be >= 1 and per_seconds > 0, not "
                f"{self.max_calls!r} per {self.per_seconds!r}."
            )


@dataclass(frozen=True)
class RateLimitHeaders:
    """Where an API reports its own limit state, so we slow down before it answers 429.

    :param remaining: header with the requests left in the current window.
    :param reset: header with when the window resets.
    :param reset_is: ``seconds`` (seconds left, as OpenPanel sends) or ``epoch`` (UTC epoch
        seconds, as Braze sends).
    :param reserve: report the window used up once ``remaining`` is at or below this (requests
        other threads or processes may already have in flight).
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

    def remaining_in(self, headers: Mapping[str, str]) -> float | None:
        """Requests the API says are left in its window, or None when it does not say."""
        return _number(headers.get(self.remaining))

    def exhausted(self, headers: Mapping[str, str]) -> bool:
        """True when the API says no more requests fit in this window (beyond the reserve)."""
        remaining = self.remaining_in(headers)
        return remaining is not None and remaining <= self.reserve


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class AccountLimit(Protocol):
    """What the transport needs of an account's limit, on this machine or in Redis."""

    def slot(self) -> AbstractContextManager[Exchange]:
        """Hold a request slot for the duration of one request/response exchange."""
        ...

    def pause(self, seconds: float) -> None:
        """Make every caller of the account wait ``seconds`` (the API said Retry-After)."""
        ...

    def window_used_up(self, seconds: float, remaining: float | None = None) -> None:
        """The API reports only ``remaining`` requests left in a window that resets in ``seconds``.

        Pauses every caller until the reset, unless the limit's own count of requests sent in
        the window already explains the report: then our window holds the next request back
        to the millisecond, where the server's reset (whole seconds) would waste up to one.
        """
        ...


class Exchange:
    """One request's hold on its account's limit; :meth:`answered` says its answer is in.

    A rate window ends one API window after its first answer, so the answer is reported the
    moment it arrives, before its body is parsed or written; leaving the slot reports it at the
    latest (a failed or timed-out exchange ended too: if the request reached the server, it did
    so before then).
    """

    __slots__ = ("_report",)

    def __init__(self, report: Callable[[], None] | None = None) -> None:
        self._report = report  # None once reported, or when the answer tells the limit nothing

    def answered(self) -> None:
        report, self._report = self._report, None
        if report is not None:
            report()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.answered()


@dataclass
class Window:
    """Our copy of the API's fixed window: its first send, how many it counted, when it ends.

    ``ends`` is 0 until one of its requests is answered: the server's window opened at the
    first arrival of one of them, somewhere between the first send and the first answer.
    """

    start: float = 0.0
    count: int = 0
    ends: float = 0.0


def window_end(window: Window, per_seconds: float) -> float:
    """When the server's window is over at the latest: ``per_seconds`` after our first answer.

    Before any answer, :data:`UNANSWERED_SECONDS` after the last moment the API's window could
    have ended had it opened at once: the requests are presumed lost with their process.
    """
    return window.ends or window.start + per_seconds + UNANSWERED_SECONDS


def window_wait(window: Window, now: float, max_calls: int, per_seconds: float) -> float:
    """Seconds until one more request may be sent; 0 once it is counted in ``window``.

    The API (OpenPanel's rate limiter) opens a window when the first request after the last
    window reaches it, and counts ``max_calls`` in it. That arrival lies between our first send
    and our first answer, so our next window opens ``per_seconds`` after the first answer
    (:func:`window_answered`): never inside the server's window, whatever the first request's
    way there took. Requests of a window may be sent before that answer is in, as long as they
    reach the server before its window ends: sends stop :data:`WINDOW_MARGIN` before
    ``per_seconds`` after the first send (the earliest the server's window could end). A
    sliding log would hold the next window back by a burst's stamps, where the API does not.
    """
    if window.start > now:  # the clock was set back: no window opened in the future
        window.start = now
    window.ends = min(window.ends, now + per_seconds)
    if window.count == 0 or now >= window_end(window, per_seconds):
        window.start, window.count, window.ends = now, 1, 0.0
        return 0.0
    if window.count < max_calls and now <= window.start + per_seconds - WINDOW_MARGIN:
        window.count += 1
        return 0.0
    if window.ends:
        return window.ends - now
    return min(UNANSWERED_POLL, window_end(window, per_seconds) - now)  # full, its first answer not in


def window_answered(window: Window, opened: float, now: float, per_seconds: float) -> None:
    """A request of the window opened at ``opened`` was answered at ``now``: the window ends a window later.

    The first answer of the window sets its end; a later one, or one of a window already over
    (or closed by a pause), changes nothing.
    """
    if window.start == opened and not window.ends:
        window.ends = now + per_seconds


def close_window_by(window: Window, until: float, max_calls: int, per_seconds: float) -> None:
    """The API says its window is over at ``until``: send nothing more in ours, open the next then."""
    if window.count and until < window_end(window, per_seconds):
        window.count, window.ends = max_calls, until


def counted_in_window(window: Window, now: float, per_seconds: float) -> int:
    """Requests our open window holds (0 once it ended)."""
    return window.count if now < window_end(window, per_seconds) else 0


def explained_by_own_count(sent_in_window: int, rules: RequestRules, remaining: float | None) -> bool:
    """True when the API's used-up report is our own doing: we sent at least what it counted."""
    if rules.max_calls is None or remaining is None:
        return False
    return sent_in_window >= rules.max_calls - remaining


_registry: dict[tuple[str | None, str], AccountLimit] = {}
_registry_lock = threading.Lock()


def shared_limit(key: str, factory: Callable[[], AccountLimit], backend: str | None = None) -> AccountLimit:
    """Return the process-wide limit for ``key`` (an API account) on ``backend``, creating it once.

    ``backend`` (where the limit's state lives) is part of the key, so a connection moved to
    another backend never keeps using its old limit. A factory that raises (Redis unreachable)
    caches nothing: the next task tries again.
    """
    with _registry_lock:
        limit = _registry.get((backend, key))
        if limit is None:
            limit = _registry[(backend, key)] = factory()
        return limit
