"""ReportedTotal: the one place a listing's reported total is held to its rule and reconciled."""

from __future__ import annotations

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.paging.totals import ReportedTotal


@pytest.mark.parametrize("later", [9, 11])
def test_settled_data_must_report_the_same_total_on_every_page(later: int):
    total = ReportedTotal("API", settled=True)
    total.observe(1, 10)
    total.observe(2, 10)
    with pytest.raises(ExportIntegrityError, match=rf"^API total changed from 10 to {later} at page 3: "):
        total.observe(3, later)


def test_a_live_listing_may_grow_but_never_fall():
    total = ReportedTotal("API", settled=False)
    total.observe(1, 10)
    total.observe(2, 12)
    with pytest.raises(ExportIntegrityError, match=r"^API total fell from 12 to 11 at page 3: "):
        total.observe(3, 11)


def test_more_rows_than_a_settled_total_fail_at_once_and_a_shortfall_at_the_end():
    total = ReportedTotal("API", settled=True)
    total.observe(1, 3)
    total.count(2)
    with pytest.raises(ExportIntegrityError, match=r"reported 3 rows but 2 distinct rows arrived \(why\)"):
        total.reconcile(" (why)")
    with pytest.raises(ExportIntegrityError, match=r"sent 4 distinct rows but reported a total of 3"):
        total.count(2)
    exact = ReportedTotal("API", settled=True)
    exact.observe(1, 2)
    exact.count(2)
    exact.reconcile()
