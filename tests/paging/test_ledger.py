"""PageLedger: duplicates dropped by id, and the page bound (pages that bring nothing new fail fast)."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.ledger import PageLedger
from airflow_provider_analytics_export.paging.paginators import Page


def ledger(page_size: int) -> PageLedger:
    return PageLedger("API", "id", logging.getLogger("t"), "rows", page_size)


def rows(*ids: int) -> list[dict]:
    return [{"id": n} for n in ids]


def test_overlaps_within_the_slack_still_complete():
    """Rows shifted across boundaries cost extra pages; up to the slack the export completes."""
    pages = [(1, Page(rows(1, 2), 6)), (2, Page(rows(2, 3), 6)), (3, Page(rows(3, 4), 6))]
    pages += [(4, Page(rows(5, 6), 6))]
    check = ledger(2)
    assert [row["id"] for got in check.check(pages) for row in got] == [1, 2, 3, 4, 5, 6]
    assert check.duplicates == 2 and check.pages == 4


def test_an_id_repeated_within_one_page_is_kept_once_and_rows_without_id_always():
    """The in-page check, not only the one against earlier pages: [1, 1, 2] holds two rows."""
    check = ledger(3)
    got = check.accept(1, [*rows(1, 1, 2), {"other": "x"}], 4)
    assert got == [*rows(1, 2), {"other": "x"}] and check.duplicates == 1
    assert check.accept(2, rows(3), 4) == rows(3)
    check.finish()


def test_the_bound_fails_as_soon_as_the_missing_rows_cannot_fit():
    check = ledger(2)
    check.accept(1, rows(1, 2), 100)
    check.accept(2, rows(2, 1), 100)  # nothing new, not a repeat of the previous page
    check.accept(3, rows(1, 2), 100)
    with pytest.raises(ExportIntegrityError, match=r"page 4 leaves 98 of 100 rows .* than the 52 pages"):
        check.accept(4, rows(2, 1), 100)


def test_short_pages_count_against_the_bound():
    """A server that sends one row per page of 10: the 20 rows cannot arrive within 2 + 2 pages."""
    check = ledger(10)
    check.accept(1, rows(1), 20)
    check.accept(2, rows(2), 20)
    with pytest.raises(ExportIntegrityError, match=r"page 3 leaves 17 of 20 rows"):
        check.accept(3, rows(3), 20)


def test_a_total_that_shrinks_between_pages_fails_at_that_page():
    """Issue 22: a shrinking total is caught where it happens, not later with a vaguer message.

    Rows removed mid-export shift later pages up, so an offset skips a row that nothing else
    would notice: the page that reports the smaller total must fail, naming both totals.
    """
    check = ledger(2)
    check.accept(1, rows(1, 2), 5)
    with pytest.raises(ExportIntegrityError, match=r"^API total changed from 5 to 4 at page 2: "):
        check.accept(2, rows(3, 4), 4)
