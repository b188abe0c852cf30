"""NewestFirstCursor: a newest-first listing that grows on top while it is read."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.newest_first import NewestFirstCursor

UTC = dt.timezone.utc
WINDOW = dt.datetime(2024, 4, 15, 10, tzinfo=UTC), dt.datetime(2024, 4, 15, 11, tzinfo=UTC)


def row(key: str, minute: int, second: int = 0) -> dict:
    return {"id": key, "at": f"2024-04-15T{10 + minute // 60:02d}:{minute % 60:02d}:{second:02d}.000Z"}


def cursor() -> NewestFirstCursor:
    parse = lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return NewestFirstCursor("API", "id", "at", WINDOW, parse, logging.getLogger("t"), "rows")


def test_rows_pushed_down_by_arrivals_are_read_once():
    listing = [row(f"r{m}", m) for m in range(70, -5, -1)]  # 11:10 down to 09:56, newest first
    c = cursor()
    got = c.accept(1, listing[0:10], 75)
    listing[:0] = [row("new1", 75), row("new2", 74), row("new3", 73)]  # live traffic on top
    got += c.accept(2, listing[10:20], 78)
    got += c.accept(3, listing[20:30], 78)
    got += c.accept(4, listing[30:40], 78)
    while not c.past_window(listing[(c.progress.pages - 1) * 10 : c.progress.pages * 10]):
        page = c.progress.pages + 1
        got += c.accept(page, listing[(page - 1) * 10 : page * 10], 78)
    assert [r["id"] for r in got] == [f"r{m}" for m in range(59, -1, -1)]  # 10:59 .. 10:00, once each
    assert c.duplicates == 3 and c.arrivals == 0


def test_ties_on_a_timestamp_across_a_page_boundary():
    c = cursor()
    first = c.accept(1, [row("a", 30), row("b", 20), row("c", 20)], 5)
    second = c.accept(2, [row("c", 20), row("d", 20), row("e", 10)], 6)  # shifted by one
    assert [r["id"] for r in first + second] == ["a", "b", "c", "d", "e"]


def test_a_shrinking_total_fails():
    c = cursor()
    c.accept(1, [row("a", 30)], 5)
    with pytest.raises(ExportIntegrityError, match="total fell from 5 to 4"):
        c.accept(2, [row("b", 20)], 4)
