"""How OpenPanel's ``/export/events`` listing is read: which pages, in which order, checked how.

The listing is newest first with offset pages, the count a separate query, and live
traffic lands on top while it is read. Three ways to read it, each with its checks:
every page of past whole days at once (:meth:`EventListing.all_pages`), only the pages that
hold a shorter or live window (:meth:`EventListing.window_pages`), and a profile's listing
from its top (:meth:`EventListing.from_the_top`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.ledger import PageLedger
from airflow_provider_analytics_export.paging.newest_first import NewestFirstCursor
from airflow_provider_analytics_export.paging.paginators import Page, PageNumberPaginator, PagingFields, Row
from airflow_provider_analytics_export.paging.seek import seek_page
from airflow_provider_analytics_export.windows import in_window, to_datetime

API = "OpenPanel"
LABEL = "OpenPanel events"
ID_FIELD = "id"
TIME_FIELD = "createdAt"


class EventListing:
    """One query's listing: its pages asked for by ``fetch`` with the paging fields added.

    :param fetch: one page of the listing for these paging fields (the hook's request).
    :param paginator: the page size and the paging fields' names.
    :param window: [start, end) of the export; rows outside it are read but not kept.
    :param log: logger for progress lines.
    """

    def __init__(
        self,
        fetch: Callable[[PagingFields], Page],
        paginator: PageNumberPaginator,
        window: tuple[dt.datetime, dt.datetime],
        log: Any,
    ) -> None:
        self._page = fetch
        self.paginator = paginator
        self.window = window
        self.log = log

    def _cursor(self, settled: bool) -> NewestFirstCursor:
        return NewestFirstCursor(API, ID_FIELD, TIME_FIELD, self.window, _created, self.log, LABEL, settled)

    def all_pages(self, max_concurrency: int) -> Iterator[list[Row]]:
        """Past whole days: every page, concurrently, checked by :class:`PageLedger` against the count."""
        ledger = PageLedger(API, ID_FIELD, self.log, LABEL, self.paginator.page_size)
        pages = self.paginator.concurrently(self._page, max_concurrency)
        for rows in ledger.check(pages):
            yield rows_in_window(rows, self.window)

    def window_pages(self, days: tuple[dt.datetime, dt.datetime], settled: bool) -> Iterator[list[Row]]:
        """Only the pages that hold the window, one after another, from the one holding its end.

        A one-row read gives the listing's count; :func:`seek_page` finds the page holding the
        window's end (``days``: the times the listing spans); pages follow until one reaches
        below the window's start. About ``ceil(window rows / page_size) + 2`` requests instead
        of a request per page above the window. Live traffic (days including today) lands on
        top while this reads: later pages then repeat rows (dropped by
        :class:`NewestFirstCursor`), never skip one.

        What stands in for the whole-day count (which only a whole-day read can check): a
        settled listing must report the first total on every page (a live one: never less);
        the first page read starts at or after ``end`` (or is page 1) and the last reaches
        below ``start`` (or is the listing's end), so no window row lies outside the pages
        read; pages are consecutive and full (a short page before the listing's end fails),
        so none between was skipped; and :class:`NewestFirstCursor` fails on a row out of
        order or repeated.
        """
        cursor = self._cursor(settled)
        paginator = self.paginator
        total = self._page({paginator.page_param: 1, paginator.size_param: 1}).total
        cursor.reported.observe(1, total)

        def fetch(number: int) -> Page:
            page = self._page(paginator.fields(number))
            cursor.reported.observe(number, page.total)
            return page

        number, page = seek_page(fetch, _row_time, self.window[1], days, total, paginator.page_size, API)
        while True:
            # The page the search found may have been read before later ones (their totals newer).
            yield cursor.accept(number, page.rows, max(page.total, cursor.reported.last or 0))
            read = (number - 1) * paginator.page_size + len(page.rows)
            if read < page.total and len(page.rows) < paginator.page_size:
                raise ExportIntegrityError(
                    f"OpenPanel page {number} holds {len(page.rows)} of {paginator.page_size} rows though "
                    f"{page.total - read:,} of the {page.total:,} remain: the server stopped early."
                )
            if read >= page.total or cursor.past_window(page.rows):
                break
            number += 1
            page = fetch(number)
        cursor.progress.finish()

    def from_the_top(self, profile_id: str, settled: bool) -> Iterator[list[Row]]:
        """A profile's listing: pages one after another from page 1 until it ends or passes the window.

        ``meta.pages`` is not trusted: with ``profile_id`` the listing also holds the
        profile's anonymous device events, which ``totalCount`` does not count. When the days
        are all past, the count must still match: the rows with ``profileId`` equal to
        ``profile_id`` read over the whole listing.
        """
        cursor = self._cursor(settled)
        pages = self.paginator.one_after_another(
            self._page,
            last=lambda page: not settled and cursor.past_window(page.rows),
        )
        for number, page in pages:
            kept = cursor.accept(number, page.rows, page.total)
            if settled:
                cursor.reported.count(sum(1 for row in cursor.new if row.get("profileId") == profile_id))
            yield kept
        if settled:
            cursor.reported.reconcile(f" for profile {profile_id!r}")
        cursor.progress.finish()


def _created(value: Any) -> dt.datetime:
    """An event's ``createdAt``; the server's ISO text is parsed directly (once per row, so cheap)."""
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass  # to_datetime names the field and the value
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return to_datetime(value, TIME_FIELD)


def rows_in_window(rows: list[Any], window: tuple[dt.datetime, dt.datetime]) -> list[dict[str, Any]]:
    """The rows created in [start, end), read by their own timestamps.

    When every ``createdAt`` is UTC text of one shape (``...Z``, what the server's JSON dates
    are), text order is time order: if the earliest and the latest are inside the window, all
    rows are, and only those two are parsed. Anything else is parsed row by row.
    """
    stamps = [row[TIME_FIELD] for row in rows]
    shape = len(stamps[0]) if stamps else 0
    uniform = all(type(stamp) is str and stamp[-1:] == "Z" and len(stamp) == shape for stamp in stamps)
    if stamps and uniform and all(in_window(_created(edge), *window) for edge in (min(stamps), max(stamps))):
        return list(rows)
    return [row for row, stamp in zip(rows, stamps, strict=True) if in_window(_created(stamp), *window)]


def _row_time(row: Row) -> dt.datetime:
    return _created(row[TIME_FIELD])
