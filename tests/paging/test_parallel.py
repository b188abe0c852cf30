"""fetch_in_order and read_ahead: ordering, the bound on pages read ahead, errors, and cleanup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from airflow_provider_analytics_export.paging.parallel import fetch_in_order, read_ahead


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


# -- read_ahead -------------------------------------------------------------------------------------


class Listing:
    """A listing read one page at a time, recording each read and its thread.

    Its cleanup (a real listing closes its HTTP response) takes ``close_delay`` seconds, so a
    test sees whether closing the read-ahead waited for it.
    """

    def __init__(self, count: int, fail_at: int | None = None, close_delay: float = 0.0) -> None:
        self.count = count
        self.fail_at = fail_at
        self.close_delay = close_delay
        self.read: list[int] = []
        self.threads: set[int] = set()
        self.closed = threading.Event()

    def __iter__(self):
        try:
            for number in range(1, self.count + 1):
                self.read.append(number)
                self.threads.add(threading.get_ident())
                if number == self.fail_at:
                    raise RuntimeError(f"page {number} failed")
                yield number
        finally:
            time.sleep(self.close_delay)
            self.closed.set()


def readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "read-ahead"]


@pytest.fixture
def new_readers() -> Callable[[], list[threading.Thread]]:
    """The read-ahead threads started since the test began that are still alive.

    Only this test's: another test in the same worker may have left one waiting (an export that
    failed mid-write keeps its pages in the exception's reference cycle until the garbage
    collector runs), and that is no failure of the test that happens to look next.
    """
    before = set(readers())
    return lambda: [thread for thread in readers() if thread not in before]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes: another thread's progress, under load."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_read_ahead_yields_every_page_in_order_read_on_one_other_thread(new_readers):
    listing = Listing(50)
    assert list(read_ahead(listing)) == list(range(1, 51))
    assert listing.threads and threading.get_ident() not in listing.threads and len(listing.threads) == 1
    assert listing.closed.is_set() and new_readers() == []


@pytest.mark.parametrize("depth", [1, 3])
def test_read_ahead_reads_at_most_depth_pages_beyond_those_taken(depth):
    listing = Listing(100)
    with closing(read_ahead(listing, depth=depth)) as pages:
        for taken in range(1, 6):
            assert next(pages) == taken
            ahead = taken + depth
            assert wait_until(lambda ahead=ahead: len(listing.read) >= ahead)  # as far as it may...
            time.sleep(0.05)
            assert len(listing.read) == ahead  # ... and no further


def test_read_ahead_raises_an_error_in_its_turn_with_where_it_happened(new_readers):
    listing = Listing(100, fail_at=4)
    pages = read_ahead(listing, depth=3)
    seen = [next(pages)]
    assert wait_until(lambda: len(listing.read) == 4)  # three pages ahead, the reader has met the error...
    with pytest.raises(RuntimeError, match="page 4 failed") as caught:
        seen.extend(pages)
    assert seen == [1, 2, 3]  # ... and the pages before it still come first
    assert "__iter__" in {entry.name for entry in caught.traceback}
    assert listing.read == [1, 2, 3, 4] and new_readers() == []


@pytest.mark.parametrize("how", ["close", "drop"])
def test_stopping_early_stops_the_reader_without_reading_more(how, new_readers):
    listing = Listing(1000, close_delay=0.2)
    listing_pages = iter(listing)  # still referenced here: only an explicit close ends it
    pages = read_ahead(listing_pages, depth=2)
    assert [next(pages), next(pages)] == [1, 2]
    assert wait_until(lambda: len(listing.read) == 2 + 2)  # the reader now waits for room
    if how == "close":
        pages.close()
    else:
        del pages  # abandoned: collected at once, which closes it
    # Stopping waited for the reader, which closed the listing (slowly): nothing is left running.
    assert listing.closed.is_set() and new_readers() == []
    time.sleep(0.05)
    assert len(listing.read) == 2 + 2


def test_read_ahead_closed_on_its_own_reader_thread_does_not_fail():
    """A generator finalised on its reader (e.g. collected there) must not try to join itself."""
    holder: dict[str, Any] = {}
    errors: list[BaseException] = []
    first_taken = threading.Event()

    def listing():
        holder["reader"] = threading.current_thread()
        for number in range(1, 100):
            if number == 3:
                first_taken.wait(5)  # the generator is paused at its yield, not running on the caller
                try:
                    holder["pages"].close()
                except BaseException as exc:  # noqa: BLE001 - the test records whatever escapes
                    errors.append(exc)
            yield number

    pages = read_ahead(listing(), depth=2)
    holder["pages"] = pages
    assert next(pages) == 1  # the reader is now reading pages 2 and 3
    first_taken.set()
    holder["reader"].join(5)  # it ends by itself, having been told to stop
    assert errors == [] and not holder["reader"].is_alive()
    with pytest.raises(StopIteration):
        next(pages)


def test_read_ahead_refuses_a_depth_below_one():
    with pytest.raises(ValueError, match="depth=0 must be at least 1"):
        next(read_ahead([1], depth=0))
