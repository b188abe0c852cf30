"""Checks offset/page-numbered pages as they arrive (Browsee offsets, OpenPanel past days).

Offset/page pagination over a live dataset can go wrong silently: rows inserted or
deleted mid-export shift later pages (a row doubled at a page boundary, or one skipped),
and a misbehaving server can repeat a page or stop early. :class:`PageLedger` checks
each page as it arrives and the totals at the end, so an export either holds every row
the API reported exactly once or fails with :class:`ExportIntegrityError`. A page bound
(the pages the reported total needs, plus :data:`PAGE_SLACK`) makes a server that keeps
sending pages already seen fail within a few pages instead of being read to the end.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.paginators import Page, Row
from airflow_provider_analytics_export.paging.totals import ReportedTotal
from airflow_provider_analytics_export.progress import ExportProgress

#: Pages whose ids are remembered for de-duplication. A shift moves rows across a page
#: boundary only, so overlaps are always with recent pages; remembering every id would
#: make memory grow with the export.
REMEMBERED_PAGES = 4
#: Pages allowed beyond what the reported total needs: rows shifted across page boundaries
#: (dropped as duplicates) cost a page or two; a server not advancing costs many.
PAGE_SLACK = 2


class PageLedger:
    """Checks one paginated export page by page, in page order.

    :param api: API name for messages (``"Browsee"``).
    :param id_field: the rows' stable id (``sessionId`` / ``id``), used to drop overlaps.
    :param log: logger for progress lines and overlap warnings.
    :param label: what is exported, for progress lines (``"Browsee sessions"``).
    :param page_size: rows asked for per page, for the page bound.
    :param key: a row's identity when it is more than ``row[id_field]`` (e.g. a content key
        for rows that may lack the id); None means "cannot tell" and is never de-duplicated.
    """

    def __init__(
        self,
        api: str,
        id_field: str,
        log: Any,
        label: str,
        page_size: int,
        key: Callable[[Row], Any] | None = None,
    ) -> None:
        self.api = api
        self.page_size = page_size
        self.id_field = id_field
        self.key = key
        self.log = log
        self.reported = ReportedTotal(api, settled=True)
        self.pages = 0
        self.duplicates = 0
        self.progress = ExportProgress(log, label)
        self._recent: deque[set[Any]] = deque(maxlen=REMEMBERED_PAGES)
        self._previous_ids: tuple[Any, ...] = ()

    @property
    def total(self) -> int | None:
        """The total the API reported (None before the first page)."""
        return self.reported.first

    @property
    def rows(self) -> int:
        """Distinct rows received so far."""
        return self.reported.counted

    @property
    def complete(self) -> bool:
        """True once the rows received reach the total the API reported."""
        return self.total is not None and self.rows >= self.total

    def check(self, pages: Iterable[tuple[int, Page]]) -> Iterator[list[Row]]:
        """The new rows of each ``(number, page)`` a paginator yields; :meth:`finish` after the last."""
        for number, page in pages:
            yield self.accept(number, page.rows, page.total)
        self.finish()

    def accept(self, page: int, rows: Sequence[Row], total: int) -> list[Row]:
        """Check page ``page`` (its rows and the total the API reported with it); return its new rows."""
        self.reported.observe(page, total)
        if not rows and not self.complete:
            raise ExportIntegrityError(
                f"{self.api} returned an empty page {page} after {self.rows:,} of {total:,} rows: "
                "the server stopped early; the export is incomplete."
            )
        ids = tuple(map(self.key, rows)) if self.key else tuple(row.get(self.id_field) for row in rows)
        if any(key is not None for key in ids) and ids == self._previous_ids:
            raise ExportIntegrityError(
                f"{self.api} page {page} repeats the previous page ({len(rows)} identical rows): "
                "the server is not advancing through the result set."
            )
        fresh = self._drop_seen(page, rows, ids)
        self.pages += 1
        self.reported.count(len(fresh))
        self._check_bound(page, total)
        self.progress.update(len(fresh), total_pages=math.ceil(total / self.page_size), total=total)
        return fresh

    def finish(self) -> None:
        """Fail unless exactly the reported total arrived; then log the final progress line."""
        self.reported.reconcile(f" ({self.duplicates:,} duplicates dropped)")
        self.progress.finish()

    def _check_bound(self, page: int, total: int) -> None:
        """Fail as soon as the rows still missing cannot arrive within the page bound."""
        bound = math.ceil(total / self.page_size) + PAGE_SLACK
        if self.pages + math.ceil((total - self.rows) / self.page_size) > bound:
            raise ExportIntegrityError(
                f"{self.api} page {page} leaves {total - self.rows:,} of {total:,} rows still to come, "
                f"more than the {bound:,} pages of {self.page_size:,} that the total allows (slack "
                f"{PAGE_SLACK}) can hold: the server keeps sending rows already seen (or short pages) "
                "instead of advancing through the result set."
            )

    def _drop_seen(self, page: int, rows: Sequence[Row], ids: tuple[Any, ...]) -> list[Row]:
        known = {key for key in ids if key is not None}
        overlaps = any(not known.isdisjoint(recent) for recent in self._recent)
        # The usual page: every id new and present once, so nothing to drop row by row.
        fresh = list(rows) if not overlaps and len(known) == len(ids) else self._fresh_rows(rows, ids)
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
        self._recent.append(known)
        self._previous_ids = ids
        return fresh

    def _fresh_rows(self, rows: Sequence[Row], ids: tuple[Any, ...]) -> list[Row]:
        """The rows whose id is neither in the recent pages nor earlier on this page (None: kept)."""
        seen: set[Any] = set().union(*self._recent)
        fresh: list[Row] = []
        for row, key in zip(rows, ids, strict=True):
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            fresh.append(row)
        return fresh
