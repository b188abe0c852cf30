"""Browsee session export API: POST with the keys in the JSON body, one open request at a time."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.pagination import PageLedger
from airflow_provider_analytics_export.validation import check_choices, check_int_range
from airflow_provider_analytics_export.windows import to_datetime

if TYPE_CHECKING:
    import requests

SESSIONS_ENDPOINT = "/api/v1/export/sessions"
MAX_PAGE_SIZE = 100
#: The documented ``options.select`` fields; ``sessionId`` is always returned.
SELECT_FIELDS: tuple[str, ...] = (
    "userId",
    "duration",
    "inactiveTime",
    "activeTime",
    "urls",
    "timestamp",
    "pageCount",
    "eventCount",
    "name",
    "email",
    "tags",
    "landingPage",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "browser",
    "os",
    "device",
    "isMobile",
    "ip",
    "city",
    "country",
    "domain",
    "referrer",
)
ID_FIELD = "sessionId"


def validate_session_args(fields: Iterable[str] | str | None, page_size: int) -> list[str] | None:
    """Check ``fields``/``page_size`` against the documented limits; return the field list."""
    check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
    return check_choices("fields", fields, SELECT_FIELDS)


def unix_seconds(moment: dt.datetime | dt.date | str | int | float, name: str) -> int:
    """Browsee's whole-second timestamps. Both ends round down, so consecutive windows still tile."""
    return math.floor(to_datetime(moment, name).timestamp())


class BrowseeHook(AnalyticsApiHook):
    """Talks to Browsee's ``export/sessions`` API.

    Connection: login = project API key, password = secret key. Browsee allows one open
    request per account, so every hook on the same account in this process shares one slot.

    :param browsee_conn_id: the Airflow connection id (``browsee_default``).
    """

    conn_name_attr = "browsee_conn_id"
    default_conn_name = "browsee_default"
    conn_type = "browsee"
    hook_name = "Browsee"
    api_name = "Browsee"
    default_host = "https://api.browsee.io"
    request_limit: ClassVar[tuple[int | None, int | None, float] | None] = (1, None, 0.0)

    def __init__(self, browsee_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=browsee_conn_id, **kwargs)

    def credentials_body(self) -> dict[str, str]:
        """The body fields that authenticate a call (Browsee takes keys in the body, not headers)."""
        return {
            "apiKey": self.secret(self.connection.login, "API key (login)"),
            "secretKey": self.secret(self.connection.password, "secret key (password)"),
        }

    def post_sessions(self, body: dict[str, Any]) -> dict[str, Any]:
        """One raw ``export/sessions`` call; ``body`` holds everything but the credentials."""
        return self.request("POST", SESSIONS_ENDPOINT, json={**self.credentials_body(), **body})

    def _sessions_page(self, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """(``exports.total``, ``exports.data``) of one call; a body without them fails at once."""

        def parse(response: requests.Response) -> tuple[int, list[dict[str, Any]]]:
            field = self.fields(response, "POST", SESSIONS_ENDPOINT)
            return int(field("exports", "total")), field("exports", "data", kind=list)

        return self.request("POST", SESSIONS_ENDPOINT, json={**self.credentials_body(), **body}, parse=parse)

    def iter_session_pages(
        self,
        start: dt.datetime | str | int,
        end: dt.datetime | str | int,
        segment_id: str | None = None,
        fields: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the sessions of [start, end) page by page, checked by a :class:`PageLedger`.

        Raises :class:`ExportIntegrityError` when the rows do not add up to ``exports.total``
        (checked after the last page, so consume the generator to the end).
        """
        select = validate_session_args(fields, page_size)
        query: dict[str, Any] = {"start": unix_seconds(start, "start"), "end": unix_seconds(end, "end")}
        if segment_id:
            query["segmentId"] = segment_id
        if select is not None:
            query["options"] = {"select": select}
        ledger = PageLedger(self.api_name, ID_FIELD, self.log, "Browsee sessions")
        offset, page = 0, 0
        while not ledger.complete:
            page += 1
            total, data = self._sessions_page({**query, "from": offset, "limit": page_size})
            rows = ledger.accept(page, data, total, total_pages=math.ceil(total / page_size))
            offset += len(data)
            yield rows
        ledger.finish()

    def iter_sessions(
        self,
        start: dt.datetime | str | int,
        end: dt.datetime | str | int,
        segment_id: str | None = None,
        fields: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Yield every session that started in [start, end), each exactly once.

        Memory holds one page. Browsee allows one open request per account, which the
        shared request limit enforces even across threads and hooks in this process.

        :param start: window start (inclusive): datetime, ISO string or Unix seconds.
        :param end: window end (exclusive).
        :param segment_id: only sessions of this Browsee segment.
        :param fields: the ``options.select`` fields (see ``SELECT_FIELDS``); default: all.
        :param page_size: sessions per request, 1..100.
        """
        for rows in self.iter_session_pages(start, end, segment_id, fields, page_size):
            yield from rows

    def check_connection(self) -> None:
        now = int(time.time())
        self.post_sessions({"start": now - 3600, "end": now, "from": 0, "limit": 1})
