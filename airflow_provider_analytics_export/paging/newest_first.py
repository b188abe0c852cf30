"""Reads a newest-first listing page after page, dropping repeats; it may grow at the top meanwhile."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.ledger import REMEMBERED_PAGES
from airflow_provider_analytics_export.paging.paginators import Row
from airflow_provider_analytics_export.paging.totals import ReportedTotal
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.windows import in_window


class NewestFirstCursor:
    """Reads a newest-first offset listing that may grow at the top while it is paged (OpenPanel).

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
    :param settled: the listing's days are over: its total must not change (see
        :class:`ReportedTotal`); else it may grow with live traffic but never fall.
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
        settled: bool = False,
    ) -> None:
        self.api = api
        self.id_field = id_field
        self.time_field = time_field
        self.window = window
        self.moment = moment
        self.progress = ExportProgress(log, label)
        self.duplicates = 0
        self.arrivals = 0
        self.reported = ReportedTotal(api, settled)
        self._last: Any = None
        self._ties: set[Any] = set()
        self._recent: deque[set[Any]] = deque(maxlen=REMEMBERED_PAGES)
        #: The rows of the last page not read before (in the window or not).
        self.new: list[Row] = []

    def accept(self, page: int, rows: Sequence[Row], total: int) -> list[Row]:
        """The rows of ``page`` not read before that fall in the window, in listing order."""
        self.reported.observe(page, total)
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
