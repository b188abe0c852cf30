"""Finding where a moment lies in a settled newest-first listing, in a request or two.

An hour of a past day sits somewhere inside the day's listing (OpenPanel's dates are whole
days): reading the day from page 1 costs a request per page above the hour. The listing is
sorted by time, so the offset of the hour's end can be estimated from the time span the
listing covers and refined from each page read (interpolation search): on real traffic the
first guess lands on the right page or next to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.paginators import Page, Row

#: Pages a search may read before it gives up: interpolation halving the bracket every other
#: read finds any page of a 10,000-page listing well within it; smooth traffic needs one or two.
MAX_PROBES = 16


def seek_page(
    fetch: Callable[[int], Page],
    moment: Callable[[Row], dt.datetime],
    target: dt.datetime,
    span: tuple[dt.datetime, dt.datetime],
    total: int,
    page_size: int,
    api: str,
) -> tuple[int, Page]:
    """The first page of a newest-first listing that holds a row older than ``target``, and its rows.

    Every row before that page is at or after ``target`` (its first row is, or the last row of
    the page before it was read, or it is page 1), so a reader starting there misses no row
    older than ``target``.

    :param fetch: page ``n`` of the listing (``page_size`` rows, settled: it does not change).
    :param moment: a row's time.
    :param target: the moment sought (the window's end).
    :param span: [oldest, newest) times the listing can hold (its dates), for the first guess.
    :param total: the rows of the listing.
    """
    pages = max(1, -(-total // page_size))
    # The index of the first row older than the target lies in [low, high]; the pages read are
    # kept (a few) so the one found is not read twice.
    low, high = 0, total
    # Known (index, time) points above and below the target: the listing's two ends to begin with.
    above, below = (-1, span[1]), (total, span[0])
    read: dict[int, Page] = {}
    for attempt in range(MAX_PROBES):
        first, last = low // page_size + 1, min(pages, high // page_size + 1)
        if first == last and first in read:
            return first, read[first]
        number = _guess(above, below, target, page_size, pages)
        # Interpolation first; from the third read on, every other guess halves the bracket, so
        # traffic that is far from even (a busy evening) costs a few reads, not a read per page.
        number = (first + last) // 2 if attempt >= 2 and attempt % 2 == 0 else number
        number = min(last, max(first, number))
        page = read[number] = fetch(number)
        start = (number - 1) * page_size
        if page.rows and moment(page.rows[0]) < target:
            high = min(high, start)
            below = (start, moment(page.rows[0]))
        elif page.rows and len(page.rows) == page_size and moment(page.rows[-1]) >= target:
            low = max(low, start + page_size)
            above = (start + page_size - 1, moment(page.rows[-1]))
        else:
            return number, page
        if low >= high:  # the first older row starts a page (or there is none): that page
            found = min(pages, low // page_size + 1)
            return found, read[found] if found in read else fetch(found)
    raise ExportIntegrityError(
        f"{api}: no page of the {total:,}-row listing holds the rows before {target.isoformat()} after "
        f"{MAX_PROBES} reads: new rows arrive faster than pages can be read (use a larger page_size), "
        "or the listing is not sorted newest first."
    )


def _guess(
    above: tuple[int, dt.datetime], below: tuple[int, dt.datetime], target: dt.datetime, size: int, pages: int
) -> int:
    """The page holding the interpolated index of ``target``, aimed a tenth of a page early.

    Early because a page that starts above the target proves no row was skipped before it,
    while one that starts below it needs the page before.
    """
    (high_index, high_time), (low_index, low_time) = above, below
    width = (high_time - low_time).total_seconds()
    share = (high_time - target).total_seconds() / width if width > 0 else 0.0
    index = high_index + 1 + (low_index - high_index - 1) * min(1.0, max(0.0, share))
    return min(pages, max(1, int((index - size / 10) // size) + 1))
