"""Pages read on other threads while the caller handles the ones before, in order, with bounded memory.

:func:`fetch_in_order` fetches numbered pages on a few threads at once; :func:`read_ahead`
reads a listing whose next page depends on the one before (one request at a time) on one
thread, a page ahead of the caller.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from threading import get_ident
from typing import Any, TypeVar

T = TypeVar("T")


def fetch_in_order(
    fetch: Callable[[int], T], numbers: Iterable[int], max_workers: int, ahead: int | None = None
) -> Iterator[T]:
    """``fetch(n)`` for each number on ``max_workers`` threads, yielded in the order of ``numbers``.

    At most ``ahead`` (default ``2 * max_workers``) results are in flight or waiting, so
    memory stays bounded by a few pages however long the export; the request limit
    inside ``fetch`` decides the actual pace. On error or early exit, queued fetches are
    cancelled.
    """
    window = ahead or 2 * max_workers
    workers: set[int] = set()
    pool = ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="page-fetch", initializer=lambda: workers.add(get_ident())
    )
    pending: deque[Future[T]] = deque()
    try:
        for number in numbers:
            pending.append(pool.submit(fetch, number))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # The generator may be finalised by one of the pool's own threads (e.g. garbage-collected
        # there); a thread cannot wait for itself, so only other threads wait for the fetches.
        pool.shutdown(wait=get_ident() not in workers, cancel_futures=True)


def read_ahead(pages: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``pages`` in order, each read on a thread of its own while the caller handles the one before.

    A listing read one request at a time then costs its requests alone, not requests plus
    the caller's writing. Only that thread advances ``pages`` (its requests stay one after
    another), and only while fewer than ``depth`` pages wait for the caller, so memory holds
    ``depth`` pages beyond the caller's. An error raised by ``pages`` is raised here in its
    turn, after the pages before it. Closing or dropping this generator stops the thread
    before it asks for another page (one being read is waited for) and closes ``pages``.
    """
    if depth < 1:
        raise ValueError(f"depth={depth} must be at least 1")
    room = threading.Semaphore(depth)
    ready: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    reader = threading.Thread(
        target=_read, args=(iter(pages), room, ready, stop), name="read-ahead", daemon=True
    )
    reader.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "page":
                room.release()
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        room.release()  # wakes a reader waiting for room, which then sees stop
        # Finalised on the reader itself (e.g. collected there), the generator cannot wait for it.
        if reader is not threading.current_thread():
            reader.join()


def _read(
    pages: Iterator[T],
    room: threading.Semaphore,
    ready: queue.SimpleQueue[tuple[str, Any]],
    stop: threading.Event,
) -> None:
    """(The reader thread) the next page whenever there is room, until the end, an error or stop."""
    try:
        while True:
            room.acquire()
            if stop.is_set():
                return
            try:
                page = next(pages)
            except StopIteration:
                ready.put(("end", None))
                return
            except BaseException as exc:  # noqa: BLE001 - whatever ends the reading, the caller gets it
                ready.put(("error", exc))
                return
            ready.put(("page", page))
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
