"""The row count an API reports with every page, and the rows that arrived against it.

Offset and page-number listings report a total with each page. Held to it, an export
either has every row exactly once or fails: a total that moves while paging means rows
shifted between pages, and a final count that differs means some were lost or doubled.
Every paging check (:class:`~airflow_provider_analytics_export.paging.ledger.PageLedger`,
:class:`~airflow_provider_analytics_export.paging.newest_first.NewestFirstCursor`) keeps its
count here, so the rule and its messages exist once.
"""

from __future__ import annotations

from airflow_provider_analytics_export.exceptions import ExportIntegrityError


class ReportedTotal:
    """One listing's reported total, held to one rule, and the rows counted towards it.

    :param api: API name for messages.
    :param settled: True for data that no longer changes: every page must report the first
        total, exactly. False for a listing that grows at the top while it is read (live
        traffic): the total may grow but never fall, as a fall means rows were removed and a
        later page may have skipped some.
    """

    def __init__(self, api: str, settled: bool) -> None:
        self.api = api
        self.settled = settled
        #: The total of the first page, then of the latest one.
        self.first: int | None = None
        self.last: int | None = None
        #: Rows counted towards the total (distinct rows the total counts).
        self.counted = 0

    def observe(self, page: int, total: int) -> None:
        """Check the total reported with page ``page`` against the earlier ones."""
        if self.first is None:
            self.first = total
        elif self.settled and total != self.first:
            raise ExportIntegrityError(
                f"{self.api} total changed from {self.first:,} to {total:,} at page {page}: the data "
                "changed during pagination, so offsets no longer line up. Re-run the task."
            )
        elif self.last is not None and total < self.last:
            raise ExportIntegrityError(
                f"{self.api} total fell from {self.last:,} to {total:,} at page {page}: rows were "
                "removed while paging, so later pages may have skipped some. Re-run the task."
            )
        self.last = total

    def count(self, rows: int) -> None:
        """Count ``rows`` more; for settled data, more rows than the total fail at once."""
        self.counted += rows
        if self.settled and self.last is not None and self.counted > self.last:
            raise ExportIntegrityError(
                f"{self.api} sent {self.counted:,} distinct rows but reported a total of {self.last:,}: "
                "the data changed during the export."
            )

    def reconcile(self, detail: str = "") -> None:
        """After the last page: fail unless exactly the reported total arrived.

        :param detail: what else explains a mismatch, e.g. ``" (3 duplicates dropped)"``.
        """
        total = self.last or 0
        if self.counted != total:
            raise ExportIntegrityError(
                f"{self.api} reported {total:,} rows but {self.counted:,} distinct rows arrived{detail}: "
                "the data shifted during pagination or the server stopped early. Nothing was written; "
                "re-run the task."
            )
