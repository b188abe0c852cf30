"""Browsee session export API: POST with the keys in the JSON body, one open request at a time."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.files.schemas import Column, Schema, columns_of
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.paging.ledger import PageLedger
from airflow_provider_analytics_export.paging.paginators import OffsetPaginator, Page
from airflow_provider_analytics_export.paging.parallel import read_ahead
from airflow_provider_analytics_export.transport.limits import RequestRules
from airflow_provider_analytics_export.validation import check_choices, check_int_range
from airflow_provider_analytics_export.windows import to_datetime

if TYPE_CHECKING:
    import requests

SESSIONS_ENDPOINT = "/api/v1/export/sessions"
MAX_PAGE_SIZE = 100
#: The documented ``options.select`` fields.
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
#: Not among the documented fields: used to de-duplicate when present, never relied on.
ID_FIELD = "sessionId"
TIMESTAMP_FIELD = "timestamp"
#: Pages read ahead of the caller (100 sessions each at most): enough to keep the one open
#: request busy through a slow write (the first loads Airflow's lineage plugins, ~0.5 s).
READ_AHEAD_PAGES = 8


#: Browsee ``export/sessions``: ``sessionId`` (sent by some accounts, undocumented) and every
#: documented ``options.select`` field, in the documented order.
BROWSEE_SESSIONS = Schema(
    "browsee_sessions",
    (
        Column("sessionId", "string", "Session id, when Browsee sends one (not a documented field)."),
        Column("userId", "string", "User ID, as provided by the identify call."),
        Column("duration", "float64", "Duration of the session, milliseconds."),
        Column("inactiveTime", "float64", "Time the user was inactive during the session, milliseconds."),
        Column("activeTime", "float64", "duration - inactiveTime, milliseconds."),
        Column("urls", "json", "URLs visited in the session (a JSON list)."),
        Column("timestamp", "timestamp_ms", "Start of the session (Browsee sends epoch milliseconds)."),
        Column("pageCount", "int64", "Number of pages visited."),
        Column("eventCount", "int64", "Number of events."),
        Column("name", "string", "Name, if provided in the identify call."),
        Column("email", "string", "Email, if provided in the identify call."),
        Column("tags", "json", "Tags, if provided in the identify call (JSON)."),
        Column("landingPage", "string", "Landing page of the session."),
        *columns_of(
            "string",
            "UTM parameter {name}.",
            ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"),
        ),
        Column("browser", "string", "The user's browser."),
        Column("os", "string", "Operating system."),
        Column("device", "string", "The user's device."),
        Column("isMobile", "bool", "Whether the device is considered mobile."),
        Column("ip", "string", "IP the session came from."),
        Column("city", "string", "City detected from the IP."),
        Column("country", "string", "Country detected from the IP."),
        Column("domain", "string", "Domain the session was recorded on."),
        Column("referrer", "string", "Referrer of the session (the domain only)."),
    ),
)


def validate_session_args(fields: Iterable[str] | str | None, page_size: int) -> list[str] | None:
    """Check ``fields``/``page_size`` against the documented limits; return the field list."""
    check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
    return check_choices("fields", fields, SELECT_FIELDS)


def session_key(session: dict[str, Any]) -> Any:
    """A session's identity across pages: its ``sessionId`` if sent, else a digest of its content.

    Two distinct sessions with equal content (same millisecond, same fields) would count
    once, so the total check then fails the export rather than losing one silently.
    """
    if session.get(ID_FIELD) is not None:
        return session[ID_FIELD]
    content = json.dumps(session, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(content.encode(), digest_size=16).digest()


class BrowseeHook(AnalyticsApiHook):
    """Talks to Browsee's ``export/sessions`` API.

    Connection: login = project API key, password = secret key. Browsee allows one open
    request per account, so every hook on the same account shares one slot: on this machine
    (every process), or on the Redis the ``limit_backend`` extra names (every machine).
    """

    conn_type = "browsee"
    hook_name = "Browsee"
    default_host = "https://api.browsee.io"
    request_limit: ClassVar[RequestRules | None] = RequestRules(max_in_flight=1)

    def credentials_body(self) -> dict[str, str]:
        """The body fields that authenticate a call (Browsee takes keys in the body, not headers)."""
        return {
            "apiKey": self.required_credential(self.connection.login, "API key (login)"),
            "secretKey": self.required_credential(self.connection.password, "secret key (password)"),
        }

    def post_sessions(self, body: dict[str, Any]) -> Page:
        """One ``export/sessions`` call (``body`` holds everything but the credentials): its rows and total.

        ``exports.data`` and ``exports.total`` are read at once, so a body without them fails here.
        """

        def parse(response: requests.Response) -> Page:
            field = self.body_reader(response, "POST", SESSIONS_ENDPOINT)
            return Page(field("exports", "data", kind=list), field("exports", "total", kind=int))

        return self.request("POST", SESSIONS_ENDPOINT, json={**self.credentials_body(), **body}, parse=parse)

    def iter_session_pages(
        self,
        start: dt.datetime | str | int,
        end: dt.datetime | str | int,
        segment_id: str | None = None,
        fields: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the sessions that started in [start, end) page by page, checked by a :class:`PageLedger`.

        One request is open at a time, so an export takes pages x latency at best: the next
        pages are requested, parsed and checked on one thread (:func:`read_ahead`) while the
        caller writes this one, so writing stays off that path. That thread sends them one
        after another, and the account's limit still holds the one open request.

        Whether Browsee's ``end`` is inclusive is not documented, so the request asks for
        whole seconds covering the window either way (``start`` rounded down, ``end`` up)
        and always selects ``timestamp``; sessions are then kept by their own timestamp
        (ms) in [start, end), so one starting exactly at ``end`` lands in the next window
        only. The offset (``from``) goes in the body (:class:`OffsetPaginator`), and
        overlapping pages are de-duplicated by :func:`session_key`.

        Raises :class:`ExportIntegrityError` when the rows do not add up to ``exports.total``
        (checked after the last page, so consume the generator to the end), when pages keep
        repeating rows already seen (within a few pages), or when a session has no
        timestamp or one outside what was asked for.
        """
        select = validate_session_args(fields, page_size)
        start, end = to_datetime(start, "start"), to_datetime(end, "end")
        asked = math.floor(start.timestamp()), math.ceil(end.timestamp())
        query: dict[str, Any] = {"start": asked[0], "end": asked[1]}
        if segment_id:
            query["segmentId"] = segment_id
        if select is not None:
            query["options"] = {"select": list(dict.fromkeys([*select, TIMESTAMP_FIELD]))}
        keep = _window_filter(
            start, end, asked, strip_timestamp=select is not None and TIMESTAMP_FIELD not in select
        )
        ledger = PageLedger(self.api_name, ID_FIELD, self.log, "Browsee sessions", page_size, session_key)
        paginator = OffsetPaginator(page_size, offset_param="from")
        pages = ledger.check(paginator.pages(lambda paging: self.post_sessions({**query, **paging})))
        yield from read_ahead((keep(rows) for rows in pages), depth=READ_AHEAD_PAGES)

    def iter_sessions(
        self,
        start: dt.datetime | str | int,
        end: dt.datetime | str | int,
        segment_id: str | None = None,
        fields: Iterable[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Yield every session that started in [start, end), each exactly once.

        Memory holds a few pages (:data:`READ_AHEAD_PAGES` read ahead). Browsee allows one
        open request per account, which the account's limit keeps across threads, hooks and
        processes (see :class:`BrowseeHook`).

        :param start: window start (inclusive): datetime, ISO string or Unix seconds.
        :param end: window end (exclusive).
        :param segment_id: only sessions of this Browsee segment.
        :param fields: the ``options.select`` fields (see ``SELECT_FIELDS``); default: all.
        :param page_size: sessions per request, 1..100.
        """
        for rows in self.iter_session_pages(start, end, segment_id, fields, page_size):
            yield from rows

    def check_connection(self) -> None:
        """One one-row listing of the last hour: the keys work and the body has the expected shape."""
        now = int(time.time())
        self.post_sessions({"start": now - 3600, "end": now, "from": 0, "limit": 1})


def _window_filter(
    start: dt.datetime, end: dt.datetime, asked: tuple[int, int], strip_timestamp: bool
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Keep the sessions of a page that started in [start, end) (ms), by their own timestamp.

    A session outside the seconds asked for (under either reading of ``end``) means the
    API did not filter as asked, so it fails instead of being dropped quietly.
    """
    start_ms, end_ms = start.timestamp() * 1000, end.timestamp() * 1000
    lowest, beyond = asked[0] * 1000, (asked[1] + 1) * 1000

    def keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = []
        for row in rows:
            moment = row.get(TIMESTAMP_FIELD)
            if (
                isinstance(moment, bool)
                or not isinstance(moment, (int, float))
                or not lowest <= moment < beyond
            ):
                raise ExportIntegrityError(
                    f"Browsee returned a session with timestamp={moment!r} for start={asked[0]}, "
                    f"end={asked[1]} (Unix seconds); refusing to place it in a window."
                )
            if start_ms <= moment < end_ms:
                kept.append(
                    {k: v for k, v in row.items() if k != TIMESTAMP_FIELD} if strip_timestamp else row
                )
        return kept

    return keep
