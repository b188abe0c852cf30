"""Bookkeeping for paginated exports (Browsee offsets, OpenPanel page numbers), written once.

Offset/page pagination over a live dataset can go wrong silently: rows inserted or
deleted mid-export shift later pages (a row doubled at a page boundary, or one skipped),
and a misbehaving server can repeat a page or stop early. :class:`PageLedger` checks
each page as it arrives and the totals at the end, so an export either holds every row
the API reported exactly once or fails with :class:`ExportIntegrityError`.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from threading import get_ident
from typing import Any, TypeVar

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.windows import in_window, window_fields
from airflow_provider_analytics_export.writer import ExportWriter

T = TypeVar("T")
Row = dict[str, Any]

#: Pages whose ids are remembered for de-duplication. A shift moves rows across a page
#: boundary only, so overlaps are always with recent pages; remembering every id would
#: make memory grow with the export.
REMEMBERED_PAGES = 4


class PageLedger:
    """Checks one paginated export page by page, in page order.

    :param api: API name for messages (``"Browsee"``).
    :param id_field: the rows' stable id (``sessionId`` / ``id``), used to drop overlaps.
    :param log: logger for progress lines and overlap warnings.
    :param label: what is exported, for progress lines (``"Browsee sessions"``).
    :param key: a row's identity when it is more than ``row[id_field]`` (e.g. a content key
        for rows that may lack the id); None means "cannot tell" and is never de-duplicated.
    """

    def __init__(
        self, api: str, id_field: str, log: Any, label: str, key: Callable[[Row], Any] | None = None
    ) -> None:
        self.api = api
        self.id_field = id_field
        self.key: Callable[[Row], Any] = key or (lambda row: row.get(id_field))
        self.log = log
        self.total: int | None = None
        self.pages = 0
        self.rows = 0
        self.duplicates = 0
        self.progress = ExportProgress(log, label)
        self._recent: deque[set[Any]] = deque(maxlen=REMEMBERED_PAGES)
        self._previous_ids: tuple[Any, ...] = ()

    @property
    def complete(self) -> bool:
        """True once the rows received reach the total the API reported."""
        return self.total is not None and self.rows >= self.total

    def accept(self, page: int, rows: Sequence[Row], total: int, total_pages: int | None = None) -> list[Row]:
        """Check page ``page`` (its rows and the total the API reported with it); return its new rows."""
        self._check_total(page, total)
        if not rows and not self.complete:
            raise ExportIntegrityError(
                f"{self.api} returned an empty page {page} after {self.rows:,} of {total:,} rows: "
                "the server stopped early; the export is incomplete."
            )
        ids = tuple(self.key(row) for row in rows)
        if any(key is not None for key in ids) and ids == self._previous_ids:
            raise ExportIntegrityError(
                f"{self.api} page {page} repeats the previous page ({len(rows)} identical rows): "
                "the server is not advancing through the result set."
            )
        fresh = self._drop_seen(page, rows, ids)
        self.pages += 1
        self.rows += len(fresh)
        if self.rows > total:
            raise ExportIntegrityError(
                f"{self.api} sent {self.rows:,} distinct rows but reported a total of {total:,}: "
                "the dataset changed during the export."
            )
        self.progress.update(len(fresh), total_pages=total_pages, total=total)
        return fresh

    def finish(self) -> None:
        """Fail unless exactly the reported total arrived; then log the final progress line."""
        total = self.total or 0
        if self.rows != total:
            raise ExportIntegrityError(
                f"{self.api} reported {total:,} rows but {self.rows:,} distinct rows arrived"
                f" ({self.duplicates:,} duplicates dropped): the dataset shifted during pagination"
                " or the server stopped early. Nothing was written; re-run the task."
            )
        self.progress.finish()

    def _check_total(self, page: int, total: int) -> None:
        if self.total is None:
            self.total = total
        elif total != self.total:
            raise ExportIntegrityError(
                f"{self.api} total changed from {self.total:,} to {total:,} at page {page}: "
                "the dataset shifted during pagination, so offsets no longer line up."
            )

    def _drop_seen(self, page: int, rows: Sequence[Row], ids: tuple[Any, ...]) -> list[Row]:
        seen: set[Any] = set().union(*self._recent)
        fresh: list[Row] = []
        for row, key in zip(rows, ids, strict=True):
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            fresh.append(row)
        dropped = len(rows) - len(fresh)
        if dropped:
            self.duplicates += dropped
            self.log.warning(
                "%s page %d overlaps earlier pages: dropped %d duplicate %s value(s).",
                self.api,
                page,
                dropped,
                self.id_field,
            )
        self._recent.append({key for key in ids if key is not None})
        self._previous_ids = ids
        return fresh


class NewestFirstCursor:
    """Reads a newest-first offset listing that grows at the top while it is paged (OpenPanel).

    New rows (live traffic) only ever go above what was read, so a later page starts
    earlier in the old order: rows repeat, none are skipped, as long as pages are fetched
    one after another. Every row is compared with the last row read, by (timestamp, id):
    a row at or above it was either read already (its id is among the recent pages) or
    arrived during the export. An arrival newer than the window is live traffic and ignored;
    one inside the window cannot be placed and fails the export instead of being lost.
    Memory holds the ids of :data:`REMEMBERED_PAGES` pages.

    :param api: API name for messages.
    :param id_field: the rows' stable id.
    :param time_field: the rows' timestamp, in an ISO form that sorts as text.
    :param window: [start, end) of the export; rows outside it are read but not kept.
    :param moment: parses a row's timestamp into an aware datetime.
    :param log: logger for progress lines.
    :param label: what is exported, for progress lines.
    """

    def __init__(
        self,
        api: str,
        id_field: str,
        time_field: str,
        window: tuple[dt.datetime, dt.datetime],
        moment: Callable[[Any], dt.datetime],
        log: Any,
        label: str,
    ) -> None:
        self.api = api
        self.id_field = id_field
        self.time_field = time_field
        self.window = window
        self.moment = moment
        self.progress = ExportProgress(log, label)
        self.duplicates = 0
        self.arrivals = 0
        self.first_total: int | None = None
        self.last_total: int | None = None
        self._last: Any = None
        self._ties: set[Any] = set()
        self._recent: deque[set[Any]] = deque(maxlen=REMEMBERED_PAGES)
        #: The rows of the last page not read before (in the window or not).
        self.new: list[Row] = []

    def accept(self, page: int, rows: Sequence[Row], total: int) -> list[Row]:
        """The rows of ``page`` not read before that fall in the window, in listing order."""
        if self.last_total is not None and total < self.last_total:
            raise ExportIntegrityError(
                f"{self.api} total fell from {self.last_total:,} to {total:,} at page {page}: rows were "
                "removed while paging, so later pages may have skipped some. Re-run the task."
            )
        self.first_total = total if self.first_total is None else self.first_total
        self.last_total = total
        seen: set[Any] = set().union(*self._recent)
        new: list[Row] = []
        for row in rows:
            stamp, key = row[self.time_field], row[self.id_field]
            if self._last is None or stamp < self._last or (stamp == self._last and key not in self._ties):
                if stamp != self._last:
                    self._last, self._ties = stamp, set()
                self._ties.add(key)
                new.append(row)
            elif key in seen or key in self._ties:
                self.duplicates += 1
            elif self.moment(stamp) < self.window[1]:
                raise ExportIntegrityError(
                    f"{self.api} row {key!r} created at {stamp} (inside the window) appeared above rows "
                    "already read: it arrived during the export (or the listing shifted by more than "
                    f"{REMEMBERED_PAGES} pages). Re-run the task once the window's data has settled."
                )
            else:
                self.arrivals += 1
        if rows and not new:
            raise ExportIntegrityError(
                f"{self.api} page {page} held only rows already read: new rows arrive faster than "
                "pages can be read. Use a larger page_size."
            )
        self._recent.append({row[self.id_field] for row in rows})
        self.new = new
        kept = [row for row in new if in_window(self.moment(row[self.time_field]), *self.window)]
        self.progress.update(len(kept), total=total)
        return kept

    def past_window(self, rows: Sequence[Row]) -> bool:
        """True once a page ends before the window start: every later row is older still."""
        return bool(rows) and self.moment(rows[-1][self.time_field]) < self.window[0]


def export_pages(
    writer: ExportWriter, pages: Iterable[Sequence[Row]], window: tuple[dt.datetime, dt.datetime]
) -> dict[str, Any]:
    """Stream each page into ``writer`` as it arrives; the operators' result (summary + ``pages``).

    The writer is atomic: if the pages fail their checks midway, nothing reaches the destination.
    """
    count = 0
    with writer:
        for rows in pages:
            writer.write_rows(rows)
            count += 1
    return {
        **writer.summary(),
        "pages": count,
        **window_fields(*window),
    }


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
