"""The paginators: what each asks for next and when it stops, whatever the API behind ``fetch``."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from airflow_provider_analytics_export.paging.chunks import BucketChunker
from airflow_provider_analytics_export.paging.paginators import (
    OffsetPaginator,
    Page,
    PageNumberPaginator,
)
from airflow_provider_analytics_export.windows import UTC, calendar_bucket


def listing(total: int) -> list[dict]:
    return [{"id": n} for n in range(total)]


def test_offset_advances_by_the_rows_received_and_stops_at_the_total():
    rows, asked = listing(7), []

    def fetch(paging: dict[str, int]) -> Page:
        asked.append(paging)
        short = 2 if paging["from"] == 3 else paging["limit"]  # one page comes back short
        return Page(rows[paging["from"] : paging["from"] + short], len(rows))

    pages = list(OffsetPaginator(3, offset_param="from").pages(fetch))
    assert asked == [{"from": 0, "limit": 3}, {"from": 3, "limit": 3}, {"from": 5, "limit": 3}]
    assert [number for number, _ in pages] == [1, 2, 3]
    assert [row for _, page in pages for row in page.rows] == rows


@pytest.mark.parametrize("total", [0, 5])
def test_offset_stops_at_an_empty_page(total):
    asked = []

    def fetch(paging: dict[str, int]) -> Page:
        asked.append(paging["offset"])
        return Page([], total)

    assert [number for number, _ in OffsetPaginator(10).pages(fetch)] == [1]
    assert asked == [0]


def test_concurrent_pages_come_in_order_from_the_reported_count():
    threads: set[str] = set()

    def fetch(paging: dict[str, int]) -> Page:
        threads.add(threading.current_thread().name)
        number = paging["page"]
        return Page([{"id": number}], total=10, pages=5)

    pages = list(PageNumberPaginator(2).concurrently(fetch, max_concurrency=3))
    assert [(number, page.rows) for number, page in pages] == [(n, [{"id": n}]) for n in range(1, 6)]
    assert any(name.startswith("page-fetch") for name in threads)


def test_concurrent_pages_without_a_reported_count_follow_the_total():
    asked = []

    def fetch(paging: dict[str, int]) -> Page:
        asked.append(paging)
        return Page([{}], total=5)

    list(PageNumberPaginator(2, size_param="size").concurrently(fetch, max_concurrency=1))
    assert asked == [{"page": n, "size": 2} for n in (1, 2, 3)]


def test_until_stops_at_a_short_page_or_when_told():
    seen = []

    def fetch(paging: dict[str, int]) -> Page:
        return Page([{"n": paging["page"]}] * (1 if paging["page"] == 4 else 2), total=0)

    paginator = PageNumberPaginator(2)
    assert [n for n, _ in paginator.one_after_another(fetch, last=lambda page: False)] == [1, 2, 3, 4]

    def last(page: Page) -> bool:
        seen.append(page.rows[0]["n"])
        return page.rows[0]["n"] == 2

    assert [n for n, _ in paginator.one_after_another(fetch, last=last)] == [1, 2]
    assert seen == [1, 2]


def test_chunks_hold_whole_buckets_within_the_count_and_span_limits():
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    hour = dt.timedelta(hours=1)
    chunker = BucketChunker(lambda m: m + hour, 10, max_span=dt.timedelta(hours=4))
    chunks = list(chunker.chunks(start, start + 9 * hour))
    assert [(c.start, c.end, len(c.buckets)) for c in chunks] == [
        (start, start + 4 * hour, 4),
        (start + 4 * hour, start + 8 * hour, 4),
        (start + 8 * hour, start + 9 * hour, 1),
    ]
    by_count = list(BucketChunker(lambda m: m + hour, 4).chunks(start, start + 9 * hour))
    assert [len(c.buckets) for c in by_count] == [4, 4, 1]
    assert [b for c in by_count for b in c.buckets] == [start + n * hour for n in range(9)]


def test_chunks_follow_uneven_calendar_buckets():
    """Local days across a DST change are 23 and 25 hours: each is one bucket, none cut."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Berlin")
    start = calendar_bucket(dt.datetime(2024, 3, 30, 12, tzinfo=UTC), "day", zone)[0]
    end = calendar_bucket(dt.datetime(2024, 4, 2, 12, tzinfo=UTC), "day", zone)[0]
    chunks = list(BucketChunker(lambda m: calendar_bucket(m, "day", zone)[1], 2).chunks(start, end))
    assert [len(c.buckets) for c in chunks] == [2, 1]
    assert chunks[0].end - chunks[0].start == dt.timedelta(hours=47)
    assert chunks[1].start == chunks[0].end and chunks[-1].end == end
