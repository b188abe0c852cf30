"""fetch_in_order: concurrency, ordering, the bound on pages in flight, and cleanup."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_analytics_export.paging.parallel import fetch_in_order


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.running = 0
        self.max_running = 0

    def __call__(self, number: int) -> int:
        with self.lock:
            self.started.append(number)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        # Later pages finish first, so ordering is really exercised.
        time.sleep(self.delay * (1 + (number % 3 == 0)))
        with self.lock:
            self.running -= 1
        return number


def test_results_come_in_order_with_the_requested_concurrency():
    fetch = Recorder(delay=0.02)
    assert list(fetch_in_order(fetch, range(1, 41), max_workers=4)) == list(range(1, 41))
    assert fetch.max_running == 4


def test_at_most_the_window_is_fetched_ahead_of_the_consumer():
    fetch = Recorder()
    pages = fetch_in_order(fetch, range(1, 101), max_workers=3, ahead=6)
    assert next(pages) == 1
    time.sleep(0.1)
    assert len(fetch.started) <= 6 + 1  # the window, plus the one submitted as the first was taken
    pages.close()
    assert len(fetch.started) < 100  # queued fetches were cancelled


def test_an_error_stops_the_export_and_cancels_queued_fetches():
    fetch = Recorder(delay=0.01)

    def failing(number: int) -> int:
        if number == 5:
            raise RuntimeError("page 5 failed")
        return fetch(number)

    seen = []
    with pytest.raises(RuntimeError, match="page 5 failed"):
        for number in fetch_in_order(failing, range(1, 1000), max_workers=2):
            seen.append(number)
    assert seen == [1, 2, 3, 4]
    assert len(fetch.started) < 20


def test_closing_the_generator_from_one_of_its_own_fetch_threads_does_not_fail():
    """A generator finalised in a pool thread (e.g. collected there) must not try to join itself."""
    holder: dict[str, object] = {}
    first_taken = threading.Event()
    errors: list[BaseException] = []
    closed = threading.Event()

    def fetch(number: int) -> int:
        if number == 5:
            first_taken.wait(5)
            try:
                holder["pages"].close()  # type: ignore[attr-defined]
            except BaseException as exc:  # noqa: BLE001 - the test records whatever escapes
                errors.append(exc)
            closed.set()
        return number

    pages = fetch_in_order(fetch, range(1, 20), max_workers=2, ahead=8)
    holder["pages"] = pages
    assert next(pages) == 1
    first_taken.set()
    assert closed.wait(5)
    assert errors == []
    with pytest.raises(StopIteration):
        next(pages)
