"""When to send a request again and how long to wait first.

Retry-After is read by urllib3, backoff is exponential with jitter, and tenacity runs the
loop; :data:`TRANSPORT_COUNTS` counts every attempt and retry for an export's closing log line.
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

import tenacity

from airflow_provider_analytics_export.exceptions import RateLimitedError, TransientApiError

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0


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


#: Every request (attempt) and retry made through the transport in this process.
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


def retry_policy(max_attempts: int, log: Logger) -> dict[str, Any]:
    """tenacity arguments: retry transient errors and 429s, waiting as the API asked, logging each."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_seconds(state.attempt_number, getattr(exc, "retry_after", None))

    def log_retry(state: tenacity.RetryCallState) -> None:
        TRANSPORT_COUNTS.add(retries=1)
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d/%d in %.1f s", exc, state.attempt_number, max_attempts - 1, sleep)

    return {
        "stop": tenacity.stop_after_attempt(max_attempts),
        "wait": wait,
        "retry": tenacity.retry_if_exception_type((TransientApiError, RateLimitedError)),
        "before_sleep": log_retry,
        "reraise": True,
    }
