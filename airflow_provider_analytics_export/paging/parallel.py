"""Fetches numbered pages on a few threads and hands them back in order, with bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from threading import get_ident
from typing import TypeVar

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
