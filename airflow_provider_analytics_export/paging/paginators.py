"""Paginators: small objects that know how to ask for the next page and when to stop.

In the style of dlt's REST client paginators, and like them independent of any API: a
hook describes its API in a ``fetch`` callable (endpoint, body or query, where the rows
and the total are) that takes the paging fields to send, and the paginator decides which
page to ask for next and when the listing is over. Whether the pages add up is not the
paginator's business: :class:`~airflow_provider_analytics_export.paging.ledger.PageLedger`
or :class:`~airflow_provider_analytics_export.paging.newest_first.NewestFirstCursor` checks them.

- :class:`OffsetPaginator`: an offset and a limit (Browsee puts them in the JSON body,
  Sealmetrics' job list in the query: the hook merges the fields where its API wants them).
- :class:`PageNumberPaginator`: a page number, either every page of a settled listing
  fetched concurrently (:meth:`~PageNumberPaginator.concurrently`), or one page after
  another until the caller says stop (:meth:`~PageNumberPaginator.one_after_another`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_analytics_export.paging.parallel import fetch_in_order

Row = dict[str, Any]
#: The fields a paginator adds to a request, e.g. ``{"from": 200, "limit": 100}``.
PagingFields = dict[str, int]


@dataclasses.dataclass(frozen=True)
class Page:
    """One answer of a listing: its rows and what the API reported about the whole listing.

    :param rows: the page's rows, in the API's order.
    :param total: the rows the API says the whole listing holds.
    :param pages: the page count the API reports, when it reports one.
    """

    rows: list[Row]
    total: int
    pages: int | None = None


class OffsetPaginator:
    """An offset and a limit per request, the offset advanced by the rows received.

    Advancing by what arrived (not by ``limit``) never skips a row when a page comes back
    short; the listing ends once the offset reaches the reported total, or at an empty page.

    :param limit: rows asked for per request.
    :param offset_param: the offset's name in the request (``from`` for Browsee).
    :param limit_param: the limit's name in the request.
    """

    def __init__(self, limit: int, offset_param: str = "offset", limit_param: str = "limit") -> None:
        self.limit = limit
        self.offset_param = offset_param
        self.limit_param = limit_param

    def pages(self, fetch: Callable[[PagingFields], Page]) -> Iterator[tuple[int, Page]]:
        """``(number, page)`` from page 1 on; ``fetch`` sends the paging fields with its request."""
        offset, number = 0, 0
        while True:
            number += 1
            page = fetch({self.offset_param: offset, self.limit_param: self.limit})
            yield number, page
            offset += len(page.rows)
            if not page.rows or offset >= page.total:
                return


class PageNumberPaginator:
    """A page number (from 1) and a page size per request (OpenPanel's ``page`` and ``limit``).

    :param page_size: rows asked for per page.
    :param page_param: the page number's name in the request.
    :param size_param: the page size's name in the request.
    """

    def __init__(self, page_size: int, page_param: str = "page", size_param: str = "limit") -> None:
        self.page_size = page_size
        self.page_param = page_param
        self.size_param = size_param

    def fields(self, number: int) -> PagingFields:
        """The paging fields that ask for page ``number``."""
        return {self.page_param: number, self.size_param: self.page_size}

    def concurrently(
        self, fetch: Callable[[PagingFields], Page], max_concurrency: int
    ) -> Iterator[tuple[int, Page]]:
        """Every page of a listing that no longer changes: page 1 tells how many, the rest run concurrently.

        The count is the API's ``pages`` if it reports one, else the total over the page size;
        pages come back in order with at most a few in memory (:func:`fetch_in_order`).
        """
        first = fetch(self.fields(1))
        yield 1, first
        count = first.pages if first.pages is not None else math.ceil(first.total / self.page_size)
        rest = fetch_in_order(lambda n: fetch(self.fields(n)), range(2, count + 1), max_concurrency)
        yield from enumerate(rest, start=2)

    def one_after_another(
        self, fetch: Callable[[PagingFields], Page], last: Callable[[Page], bool]
    ) -> Iterator[tuple[int, Page]]:
        """Pages one after another until a short page or ``last(page)``: for a listing that moves.

        Each page is requested only after the caller has handled the one before, so a check
        it makes (e.g. that the listing did not shift) holds before the next request.
        """
        number = 1
        while True:
            page = fetch(self.fields(number))
            yield number, page
            if len(page.rows) < self.page_size or last(page):
                return
            number += 1
