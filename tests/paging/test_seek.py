"""seek_page: the page holding a moment of a newest-first listing, in few reads, whatever the traffic."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_analytics_export.paging.paginators import Page
from airflow_provider_analytics_export.paging.seek import seek_page

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)


def listing(seconds: list[float]) -> list[dict]:
    """Rows newest first, at these seconds after midnight."""
    return [{"t": DAY[0] + dt.timedelta(seconds=s)} for s in sorted(seconds, reverse=True)]


def seek(rows: list[dict], target: dt.datetime, size: int) -> tuple[int, int]:
    """(page found, pages read); the page is checked to be the right one."""
    reads: list[int] = []

    def fetch(number: int) -> Page:
        reads.append(number)
        return Page(rows[(number - 1) * size : number * size], len(rows))

    number, page = seek_page(fetch, lambda row: row["t"], target, DAY, len(rows), size, "API")
    first_older = next((i for i, row in enumerate(rows) if row["t"] < target), len(rows))
    assert number == max(1, min(first_older // size + 1, -(-len(rows) // size)))
    assert page.rows == rows[(number - 1) * size : number * size]
    return number, len(reads)


@pytest.mark.parametrize("hour", [0, 1, 9, 10, 17, 23, 24])
def test_even_traffic_is_found_at_the_first_or_second_read(hour: int):
    rows = listing([i * 0.864 for i in range(100_000)])
    _, reads = seek(rows, DAY[0] + dt.timedelta(hours=hour), 1000)
    assert reads <= 2


@pytest.mark.parametrize("hour", [1, 6, 12, 20, 22])
def test_skewed_traffic_is_found_in_a_bounded_number_of_reads(hour: int):
    """A tenth of the day's events in its first 50 minutes, the rest in its last two hours.

    Interpolation alone crawls through the empty middle a page at a time (it gives up at
    20:00); halving the bracket every other read bounds the reads by the log of the pages.
    """
    seconds = [i * 0.3 for i in range(10_000)] + [79_200 + i * 0.08 for i in range(90_000)]
    _, reads = seek(listing(seconds), DAY[0] + dt.timedelta(hours=hour), 1000)
    assert reads <= 12


def test_a_window_end_exactly_at_a_page_boundary_is_found():
    """Page 3 starts with the first older row: page 2's last row proves nothing older is before it."""
    rows = listing([float(s) for s in range(1000)])  # 999 ... 0
    target = DAY[0] + dt.timedelta(seconds=800)  # rows 999..800 are 200 rows: pages 1-2 of 100
    number, _ = seek(rows, target, 100)
    assert number == 3
