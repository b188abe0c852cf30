"""Sealmetrics exports API: async jobs (create, poll, download by token URL), estimate and stream.

Written against the vendor's current docs and OpenAPI spec (``sealmetrics/docs``,
``static/openapi.json``): every ``/exports*`` route takes ``account_id``, errors come in one
envelope, ``POST /exports`` is not idempotent and ``date_from``/``date_to`` are inclusive
local days in the account's time zone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, cast

import tenacity
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import (
    AnalyticsExportError,
    ApiError,
    InvalidRequestError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitedError,
    SealmetricsExportExpiredError,
    SealmetricsExportFailedError,
    SealmetricsExportTimeoutError,
    TransientApiError,
)
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.transport.downloads import (
    Sink,
    checked_link,
    copy_checked,
    mask_link_token,
)
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.transport.responses import file_chunks
from airflow_provider_analytics_export.transport.retry import backoff_seconds, parse_retry_after, retry_policy
from airflow_provider_analytics_export.validation import check_choice

if TYPE_CHECKING:
    import logging

    import aiohttp
    import requests

EXPORTS_ENDPOINT = "/api/v1/exports"
ESTIMATE_ENDPOINT = f"{EXPORTS_ENDPOINT}/estimate"
STREAM_ENDPOINT = f"{EXPORTS_ENDPOINT}/stream"
DOWNLOAD_PREFIX = f"{EXPORTS_ENDPOINT}/download/"
#: What logs and errors show instead of the download URL: the token is a bearer secret.
DOWNLOAD_ENDPOINT_REDACTED = f"{DOWNLOAD_PREFIX}<token>"

EXPORT_TYPES: tuple[str, ...] = (
    "pages",
    "sources",
    "mediums",
    "campaigns",
    "terms",
    "countries",
    "devices",
    "browsers",
    "os",
    "conversions",
    "microconversions",
    "time_series",
    "landing_pages",
)
EXPORT_FORMATS: tuple[str, ...] = ("csv", "json")
FILTER_KEYS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "device_type",
    "browser",
    "os",
    "content_grouping",
    "conversion_type",
    "advanced_filters",
)
RUNNING_STATUSES: tuple[str, ...] = ("pending", "estimating", "generating")
COMPLETED, FAILED, EXPIRED = "completed", "failed", "expired"
LIST_PAGE_SIZE = 100  # the documented maximum
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
#: How long create_export keeps waiting for a free slot under the plan's concurrent-export cap.
DEFAULT_CAP_WAIT_SECONDS = 3600.0
#: A job created at most this long before our clock says we sent the create can still be ours.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: Media types each format may arrive as (``/exports/stream`` also answers ndjson for json), the
#: record layout that type means, how the body must start, and that start in words.
FILE_KINDS: dict[tuple[str, str], tuple[str, re.Pattern[bytes], str]] = {
    ("csv", "text/csv"): ("csv", re.compile(rb"[^\r\n]+"), "a CSV header line"),
    ("json", "application/json"): ("json", re.compile(rb"\s*\["), "a JSON array"),
    ("json", "application/x-ndjson"): ("ndjson", re.compile(rb"\s*(\{|$)"), "a JSON object per line"),
}
DOCUMENTED_TYPE = {"csv": "text/csv", "json": "application/json"}
#: Connection extras: the account (site slug), its deprecated old name, and the account's time zone.
ACCOUNT_EXTRA, DEPRECATED_ACCOUNT_EXTRA, TIMEZONE_EXTRA = "account_id", "site_id", "timezone"


def resolve_account_id(account_id: str | None, site_id: str | None, owner: str) -> str | None:
    """``account_id``, or the deprecated ``site_id`` with a warning; both given must agree."""
    if site_id in (None, ""):
        return account_id
    warnings.warn(
        f"{owner}: site_id is deprecated, use account_id (the same site slug); Sealmetrics' "
        "/exports routes reject site_id.",
        AirflowProviderDeprecationWarning,
        stacklevel=3,
    )
    if account_id not in (None, "") and account_id != site_id:
        raise ValueError(
            f"{owner}: account_id={account_id!r} and site_id={site_id!r} differ; pass account_id only."
        )
    return account_id or site_id


def local_days(start: dt.datetime, end: dt.datetime, zone: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """[start, end) as the inclusive local days ``date_from``/``date_to`` of the account's zone.

    The API only takes whole local days; a bound that is not local midnight (an hourly
    schedule, a daily timetable in another zone) would export whole days again and again,
    so it is refused before any request.
    """
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    for name, moment in (("start", local_start), ("end", local_end)):
        if moment.timetz().replace(tzinfo=None) != dt.time(0):
            raise ValueError(
                f"Sealmetrics exports whole days in the account's time zone {zone}: window {name}="
                f"{moment.isoformat()} is not midnight there, so [start, end) is not whole days and "
                "each run would export entire days again. Schedule daily in that zone, e.g. "
                f"CronDataIntervalTimetable('@daily', timezone='{zone}'), or set the connection extra "
                f"{TIMEZONE_EXTRA!r} to the account's time zone."
            )
    return local_start.date(), local_end.date() - dt.timedelta(days=1)


def validate_export_request(
    export_type: str, export_format: str = "csv", filters: Mapping[str, Any] | None = None
) -> None:
    """Check type, format and filter keys against the documented lists (no request is sent)."""
    check_choice("export_type", export_type, EXPORT_TYPES)
    check_choice("export_format", export_format, EXPORT_FORMATS)
    if filters is None:
        return
    if not isinstance(filters, Mapping):
        raise ValueError(
            f"filters={filters!r} must be a dict of filter key to string value; "
            f"keys: {', '.join(FILTER_KEYS)}."
        )
    for key, value in filters.items():
        check_choice("filters key", key, FILTER_KEYS)
        if not isinstance(value, str):
            raise ValueError(f"filters[{key!r}]={value!r} must be a string.")


def export_body(
    export_type: str,
    date_from: dt.date | str,
    date_to: dt.date | str,
    export_format: str = "csv",
    filters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The validated JSON body shared by create, estimate and stream."""
    validate_export_request(export_type, export_format, filters)
    day_from, day_to = export_days(date_from, date_to)
    return {
        "export_type": export_type,
        "format": export_format,
        "date_from": day_from.isoformat(),
        "date_to": day_to.isoformat(),
        "filters": dict(filters or {}),
    }


def export_days(date_from: dt.date | str, date_to: dt.date | str) -> tuple[dt.date, dt.date]:
    """``date_from``/``date_to`` as inclusive days, in order (the API takes whole days)."""
    day_from, day_to = as_day(date_from, "date_from"), as_day(date_to, "date_to")
    if day_from > day_to:
        raise ValueError(f"date_from={day_from} is after date_to={day_to}; both are inclusive days.")
    return day_from, day_to


def as_day(value: dt.date | str, name: str) -> dt.date:
    """A date from a date, datetime or ``YYYY-MM-DD`` string; an error naming ``name`` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a date; use YYYY-MM-DD.") from None


def public_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job without its download URL: safe for XCom, events and logs (the token is a secret)."""
    return {key: value for key, value in job.items() if key != "download_url"}


def job_outcome(job: Mapping[str, Any]) -> tuple[str, str]:
    """(status, human message) of a job, as the sensor, trigger and operator report it."""
    status = str(job.get("status"))
    job_id = job.get("job_id")
    if status == COMPLETED:
        return status, f"Sealmetrics export {job_id} completed ({job.get('actual_rows')} rows)."
    if status == FAILED:
        return status, f"Sealmetrics export {job_id} failed: {job.get('error_message') or 'no error_message'}"
    if status == EXPIRED:
        return status, (
            f"Sealmetrics export {job_id} expired: its download link is no longer valid "
            "(links live 24 hours); create a new export."
        )
    return status, f"Sealmetrics export {job_id} is {status} ({job.get('progress_percent')}%)."


def timeout_message(job_id: str, status: str, waited: float) -> str:
    """Why a wait for a job ended before the job did (the sync wait and the trigger say the same)."""
    return (
        f"Sealmetrics export {job_id} still {status} after {waited:.0f} s (timeout); "
        "raise timeout= or check the export in Sealmetrics."
    )


def raise_for_outcome(status: str, message: str) -> None:
    """Turn a terminal non-success outcome into the matching exception."""
    if status == FAILED:
        raise SealmetricsExportFailedError(message)
    if status == EXPIRED:
        raise SealmetricsExportExpiredError(message)
    if status != COMPLETED:
        raise AnalyticsExportError(message)


def error_envelope(body: Any) -> tuple[str, str | None, str | None] | None:
    """(message, code, request_id) of an error body; None when it is not Sealmetrics' shape.

    The documented envelope is ``{"error": {code, message, detail?}, "request_id"}``; the spec
    also names FastAPI's ``{"detail": [{loc, msg, type}]}`` for 422. Validation details name
    the field (``body.date_from: invalid date``) so the user can map them to the request.
    """
    if not isinstance(body, Mapping):
        return None
    error, request_id = body.get("error"), body.get("request_id")
    if isinstance(error, Mapping):
        message, code, detail = (
            str(error.get("message") or error.get("code")),
            error.get("code"),
            error.get("detail"),
        )
    elif isinstance(body.get("detail"), list):
        message, code, detail = "Request validation failed", None, body["detail"]
    else:
        return None
    if isinstance(detail, list) and detail:
        message += ": " + "; ".join(_detail_text(item) for item in detail)
    elif detail:
        message += f" ({json.dumps(detail)[:500]})"
    return message, str(code) if code else None, str(request_id) if request_id else None


def _detail_text(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    field = item.get("field") or ".".join(str(part) for part in item.get("loc") or ())
    text = item.get("message") or item.get("msg") or item.get("type") or ""
    return f"{field}: {text}" if field else str(text)


def same_export(job: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Whether ``job`` is an export of exactly ``body`` (type, format, days and filters)."""

    def filters(value: Any) -> dict[str, Any]:
        return {k: v for k, v in (value or {}).items() if v is not None} if isinstance(value, Mapping) else {}

    return (
        all(job.get(key) == body.get(key) for key in ("export_type", "date_from", "date_to"))
        and job.get("format", "csv") == body.get("format", "csv")
        and filters(job.get("filters")) == filters(body.get("filters"))
    )


def created_at(job: Mapping[str, Any]) -> dt.datetime | None:
    """The job's ``created_at`` as an aware datetime (None when absent or unreadable)."""
    try:
        moment = dt.datetime.fromisoformat(str(job.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class SealmetricsHook(AnalyticsApiHook):
    """Talks to Sealmetrics' ``/api/v1/exports`` API on ``https://my.sealmetrics.com``.

    Connection: password = API key (``sm_...``); extra ``account_id`` = the default account
    (the site slug; ``site_id`` is accepted as its deprecated old name); extra
    ``timezone`` = the account's time zone, in which ``date_from``/``date_to`` are
    local days (default UTC).
    """

    conn_type = "sealmetrics"
    hook_name = "Sealmetrics"
    default_host = "https://my.sealmetrics.com"
    #: X-RateLimit-* come on every response; the reset is a Unix timestamp.
    rate_limit_headers = RateLimitHeaders(reset_is="epoch")

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.required_credential(self.connection.password, "API key (password)")}

    def account_id(self, account_id: str | None = None) -> str:
        """The given account, else the connection's ``account_id`` (or deprecated ``site_id``) extra."""
        if account_id and account_id.strip():
            return account_id.strip()
        current, old = self.extra(ACCOUNT_EXTRA), self.extra(DEPRECATED_ACCOUNT_EXTRA)
        if not current and old:
            warnings.warn(
                f"Connection {self.conn_id!r}: extra {DEPRECATED_ACCOUNT_EXTRA!r} is deprecated; "
                f"rename it to {ACCOUNT_EXTRA!r} (the same site slug).",
                AirflowProviderDeprecationWarning,
                stacklevel=2,
            )
            return old
        if not current:
            raise ValueError(
                f"No Sealmetrics account_id: pass account_id= or set {ACCOUNT_EXTRA!r} (the site slug) "
                f"in connection {self.conn_id!r}."
            )
        return current

    @property
    def account_timezone(self) -> dt.tzinfo:
        """The zone whose local days ``date_from``/``date_to`` mean (connection extra, default UTC)."""
        return cast("dt.tzinfo", self.extra(TIMEZONE_EXTRA))

    def check_connection(self) -> None:
        self.request("GET", EXPORTS_ENDPOINT, params={"account_id": self.account_id(), "limit": 1})

    def api_error(
        self, method: str, endpoint: str, status: int, body: Any, text: str, headers: Mapping[str, str]
    ) -> ApiError:
        """The shared mapping, with the envelope's message, ``code`` and ``request_id`` kept."""
        envelope = error_envelope(body)
        if envelope is None:
            return super().api_error(method, endpoint, status, body, text, headers)
        message, code, request_id = envelope
        request_id = request_id or headers.get("X-Request-ID")
        if status == 429 and code == "quota_exceeded":
            # A plan quota, not the per-minute limit: the transport must not retry it blindly.
            error: ApiError = QuotaExceededError(
                self.api_name,
                method,
                endpoint,
                status,
                message,
                parse_retry_after(headers.get("Retry-After")),
            )
        else:
            error = super().api_error(method, endpoint, status, {"message": message}, text, headers)
        return type(error)(
            error.api,
            error.method,
            error.endpoint,
            error.status,
            error.api_message,
            error.retry_after,
            code=code,
            request_id=request_id,
        )

    # -- jobs -----------------------------------------------------------------------
    def create_export(
        self,
        body: Mapping[str, Any],
        account_id: str | None = None,
        cap_wait_seconds: float = DEFAULT_CAP_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Create exactly one export job for ``body`` (from :func:`export_body`) and return it.

        ``POST /exports`` is not idempotent, so it is never resent blindly. It is retried by the
        transport's one retry policy (attempts, backoff, log line), whose every attempt after a
        lost answer (dropped connection, timeout, 5xx after the server may have acted) first
        lists the account's exports and adopts a job of exactly this body created since we
        sent it; only when there is none (looked for again after the read timeout when no
        answer came at all, since the server may still be acting) is the create sent again.
        A refused create is not a lost one: ``rate_limit_exceeded`` waits its ``Retry-After``;
        a full concurrent-export cap (429 or 409 while exports are running) is waited out for
        up to ``cap_wait_seconds`` with a log line; an exhausted plan quota with nothing
        running fails at once.
        """
        account = self.account_id(account_id)
        earlier = {job["job_id"] for job in self.list_exports(account) if same_export(job, body)}
        sent_at = dt.datetime.now(dt.timezone.utc)
        deadline = time.monotonic() + cap_wait_seconds
        lost: list[TransientApiError] = []

        def attempt() -> dict[str, Any]:
            if lost:
                adopted = self._find_after_loss(body, account, sent_at, earlier, lost[-1])
                if adopted is not None:
                    return adopted
            try:
                return self._post_export(body, account, deadline)
            except TransientApiError as exc:
                lost.append(exc)
                raise

        policy = retry_policy(self.max_attempts, self.log)
        policy["retry"] = tenacity.retry_if_exception_type(TransientApiError)  # a refused create waits below
        return tenacity.Retrying(**policy)(attempt)

    def _post_export(self, body: Mapping[str, Any], account: str, deadline: float) -> dict[str, Any]:
        """One ``POST /exports`` (no transport retry), sent again only after waiting for a free slot."""
        while True:
            try:
                response = self.request(
                    "POST",
                    EXPORTS_ENDPOINT,
                    parse=lambda r: loads(r.content),
                    retry=False,
                    params={"account_id": account},
                    json=dict(body),
                )
            except (RateLimitedError, QuotaExceededError, InvalidRequestError) as exc:
                self._wait_for_slot(exc, account, deadline)
                continue
            job = self._received(
                self.require(response, "job", method="POST", endpoint=EXPORTS_ENDPOINT, status=201, kind=dict)
            )
            self.log.info("%s %s", response.get("message") or "Export created.", job_outcome(job)[1])
            return job

    def _find_after_loss(
        self,
        body: Mapping[str, Any],
        account: str,
        sent_at: dt.datetime,
        earlier: set[str],
        exc: TransientApiError,
    ) -> dict[str, Any] | None:
        """The job a create whose answer was lost made, if it made one (else None: create again)."""
        self.log.info("The create's answer was lost; looking for the job it may have made.")
        adopted = self._find_created(body, account, sent_at, earlier)
        if adopted is None and exc.status is None:
            # No answer at all: the server may still be acting on the create. Give it as
            # long again as we would have waited for the answer, then look once more.
            grace = self.timeout[1]
            self.log.info("No such job yet; looking once more in %.0f s before creating again.", grace)
            time.sleep(grace)
            adopted = self._find_created(body, account, sent_at, earlier)
        if adopted is not None:
            self.log.info("Adopted export %s, made by the create whose answer was lost.", adopted["job_id"])
        return adopted

    def _find_created(
        self, body: Mapping[str, Any], account: str, sent_at: dt.datetime, earlier: set[str]
    ) -> dict[str, Any] | None:
        """The oldest new job of ``body`` created since ``sent_at`` (less clock skew)."""
        since = sent_at - CLOCK_SKEW
        found = [
            job
            for job in self.list_exports(account)
            if same_export(job, body)
            and job.get("job_id") not in earlier
            and (created_at(job) or since) >= since
        ]
        return min(found, key=lambda job: created_at(job) or since) if found else None

    def find_export(
        self, body: Mapping[str, Any], account_id: str | None, since: dt.datetime
    ) -> dict[str, Any] | None:
        """The newest usable job of exactly ``body`` created since ``since`` (a retried task's own)."""
        found = [
            job
            for job in self.list_exports(self.account_id(account_id))
            if same_export(job, body)
            and job.get("status") not in (FAILED, EXPIRED)
            and (created_at(job) or since) >= since - CLOCK_SKEW
        ]
        return max(found, key=lambda job: created_at(job) or since) if found else None

    def _wait_for_slot(self, exc: ApiError, account: str, deadline: float) -> None:
        """Sleep until a create may succeed, or re-raise ``exc`` when waiting cannot help."""
        capped = exc.status in (409, 429)
        if not capped:
            raise exc
        running = 0
        if exc.code != "rate_limit_exceeded":
            running = sum(job.get("status") in RUNNING_STATUSES for job in self.list_exports(account))
            if not running and (exc.retry_after is None or time.monotonic() + exc.retry_after > deadline):
                raise QuotaExceededError(
                    exc.api,
                    exc.method,
                    exc.endpoint,
                    exc.status,
                    f"{exc.api_message} No export is running on account {account!r}, so this is a plan "
                    "quota, not the concurrent-export cap: waiting would not free it.",
                    exc.retry_after,
                    code=exc.code,
                    request_id=exc.request_id,
                ) from None
        wait = backoff_seconds(4, exc.retry_after)
        if time.monotonic() + wait > deadline:
            raise exc
        reason = (
            f"{running} export(s) running (the plan's concurrent-export cap)" if running else "rate limited"
        )
        self.log.warning(
            "Sealmetrics create refused (%s): %s; waiting %.0f s.", exc.code or exc.status, reason, wait
        )
        time.sleep(wait)

    def estimate_export(self, body: Mapping[str, Any], account_id: str | None = None) -> dict[str, Any]:
        """Rows, size and whether a background job will be used, without creating a job."""
        return self.request(
            "POST", ESTIMATE_ENDPOINT, params={"account_id": self.account_id(account_id)}, json=dict(body)
        )

    def get_export(self, job_id: str, account_id: str | None = None) -> dict[str, Any]:
        """The job's current state (status, progress_percent, download_url once completed)."""
        return self._received(
            self.request(
                "GET", f"{EXPORTS_ENDPOINT}/{job_id}", params={"account_id": self.account_id(account_id)}
            )
        )

    async def aget_export(
        self, session: aiohttp.ClientSession, job_id: str, account_id: str | None = None
    ) -> dict[str, Any]:
        """:meth:`get_export` for triggers (same retries and errors, no blocking I/O)."""
        await self.aload_connection()
        job = await self.arequest(
            session,
            "GET",
            f"{EXPORTS_ENDPOINT}/{job_id}",
            params={"account_id": self.account_id(account_id)},
        )
        return self._received(job)

    def list_exports(
        self, account_id: str | None = None, include_expired: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every export of the account, fetching page after page until ``total``."""
        params: dict[str, Any] = {
            "account_id": self.account_id(account_id),
            "limit": LIST_PAGE_SIZE,
            "include_expired": str(include_expired).lower(),
        }
        offset = 0
        while True:
            page: dict[str, Any] = self.request("GET", EXPORTS_ENDPOINT, params={**params, "offset": offset})
            exports = page.get("exports") or []
            for job in exports:
                yield self._received(job)
            offset += len(exports)
            if not exports or offset >= int(page.get("total") or 0):
                return

    def cancel_export(self, job_id: str, account_id: str | None = None) -> None:
        """Cancel a pending export or delete a completed one (204)."""
        self.request(
            "DELETE",
            f"{EXPORTS_ENDPOINT}/{job_id}",
            params={"account_id": self.account_id(account_id)},
            parse=lambda response: None,
        )

    def wait_for_export(
        self, job_id: str, account_id: str | None = None, *, timeout: float, poll_interval: float
    ) -> dict[str, Any]:
        """Poll until the job leaves the running states and return it; raise unless it completed.

        A job still running after ``timeout`` seconds is cancelled (it would hold a slot of the
        plan's concurrent-export cap for nobody) and :class:`SealmetricsExportTimeoutError` raised.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_export(job_id, account_id)
            status, message = job_outcome(job)
            self.log.info(
                "Sealmetrics export %s: status=%s progress=%s%%", job_id, status, job.get("progress_percent")
            )
            if status not in RUNNING_STATUSES:
                raise_for_outcome(status, message)
                return job
            if time.monotonic() >= deadline:
                self.cancel_after_timeout(job_id, account_id, timeout_message(job_id, status, timeout))
            time.sleep(poll_interval)

    def cancel_after_timeout(self, job_id: str, account_id: str | None, message: str) -> NoReturn:
        """Cancel a job nobody waits for any more, then fail with ``message`` (sync wait and trigger)."""
        self.log.warning("%s Cancelling it.", message)
        try:
            self.cancel_export(job_id, account_id)
        except InvalidRequestError as exc:
            if exc.status != 404:  # 404: gone already, which is what cancelling wants
                raise
        raise SealmetricsExportTimeoutError(f"{message} The export was cancelled.")

    def _received(self, job: dict[str, Any]) -> dict[str, Any]:
        """Mask the download token of a job the moment it arrives, before anything can log it."""
        url = job.get("download_url")
        if url:
            mask_link_token(url)
        return job

    # -- files ----------------------------------------------------------------------
    def stream_export(
        self, body: Mapping[str, Any], open_sink: Callable[[str], Sink], account_id: str | None = None
    ) -> Sink:
        """Stream a small export (< 10,000 rows) into ``open_sink(layout)``: one sink per attempt.

        Raises :class:`InvalidRequestError` with status 413 when the export is too large;
        callers fall back to a background job.
        """
        fmt = body.get("format", "csv")
        return self.request(
            "POST",
            STREAM_ENDPOINT,
            params={"account_id": self.account_id(account_id)},
            json=dict(body),
            stream=True,
            parse=self._copier(open_sink, fmt, None, ("POST", STREAM_ENDPOINT, "Sealmetrics stream")),
        )

    def download_export(
        self,
        job_or_url: Mapping[str, Any] | str,
        open_sink: Callable[[str], Sink],
        export_format: str = "csv",
    ) -> Sink:
        """Download a completed job's file into ``open_sink(layout)``; returns the committed sink.

        Each attempt gets a fresh sink, committed only when the file checks out: given a job,
        its ``actual_rows`` must match the file's record count. The download URL gets no API
        key and never appears in logs. ``export_format`` only matters for a bare URL (a job
        says its own format).
        """
        if isinstance(job_or_url, str):
            url, fmt, expected = job_or_url, export_format, None
        else:
            status, message = job_outcome(job_or_url)
            raise_for_outcome(status, message)
            # A job is the body of a successful GET /exports/{job_id} (what the operators pass).
            endpoint = f"{EXPORTS_ENDPOINT}/{job_or_url.get('job_id')}"
            url = self.require(
                job_or_url, "download_url", method="GET", endpoint=endpoint, status=200, kind=str
            )
            fmt, expected = job_or_url.get("format", "csv"), job_or_url
        check_choice("export_format", fmt, EXPORT_FORMATS)
        url = self.checked_download_url(url)
        try:
            return self.request(
                "GET",
                DOWNLOAD_ENDPOINT_REDACTED,
                url=url,
                authenticated=False,
                stream=True,
                parse=self._copier(
                    open_sink, fmt, expected, ("GET", DOWNLOAD_ENDPOINT_REDACTED, "Sealmetrics download")
                ),
            )
        except InvalidRequestError as exc:
            # The spec gives an expired token no status of its own (404): the job's status says.
            if exc.status != 404 or expected is None:
                raise
            current = self.get_export(str(expected.get("job_id")), expected.get("account_id"))
            status, message = job_outcome(current)
            if status == EXPIRED:
                raise SealmetricsExportExpiredError(message) from None
            raise

    def checked_download_url(self, url: str) -> str:
        """Refuse a link to another host, or over plain http to anything but loopback."""
        return checked_link(url, self.base_url, DOWNLOAD_PREFIX, DOWNLOAD_ENDPOINT_REDACTED)

    def _copier(
        self,
        open_sink: Callable[[str], Sink],
        fmt: str,
        job: Mapping[str, Any] | None,
        request: tuple[str, str, str],
    ) -> Callable[[requests.Response], Sink]:
        """A ``parse`` callback that copies the body into a fresh sink (so a retry restarts).

        ``request`` is (method, endpoint, label for progress logs). A body whose media type is
        not one documented for ``fmt``, or that does not start like such a file (an empty 200,
        an HTML page), or whose records are malformed, is refused before anything is committed.
        """
        method, endpoint, label = request
        claimed = None
        if job is not None and job.get("actual_rows") is not None:
            rows = int(job["actual_rows"])
            claimed = (rows, f"Sealmetrics export {job.get('job_id')} reports actual_rows={rows}")

        def copy(response: requests.Response) -> Sink:
            content_type, layout, start, expected = self._file_kind(response, method, endpoint, fmt)
            chunks = file_chunks(
                response,
                self.api_name,
                method,
                endpoint,
                content_type=content_type,
                start=start,
                expected=expected,
                chunk_size=DOWNLOAD_CHUNK_BYTES,
            )
            return copy_checked(
                chunks,
                open_sink,
                layout,
                progress=ExportProgress(cast("logging.Logger", self.log), label, unit="bytes"),
                where=f"Sealmetrics {method} {endpoint}",
                claimed=claimed,
                total=int(response.headers.get("Content-Length") or 0) or None,
            )

        return copy

    def _file_kind(
        self, response: requests.Response, method: str, endpoint: str, fmt: str
    ) -> tuple[str, str, re.Pattern[bytes], str]:
        """(media type, record layout, start pattern, its words) for the answer's Content-Type.

        Unknown types fall through to ``file_chunks``' own check against the documented type;
        a charset other than UTF-8 is refused (the file is stored as sent).
        """
        header = response.headers.get("Content-Type", "")
        media, _, parameters = header.partition(";")
        media = media.strip().lower()
        charset = (
            parameters.strip().lower().removeprefix("charset=").strip('"')
            if "charset=" in parameters.lower()
            else ""
        )
        if charset and charset not in ("utf-8", "utf8"):
            raise MalformedResponseError(
                self.api_name,
                method,
                endpoint,
                response.status_code,
                f"response charset is {charset!r}, not utf-8",
            )
        known = FILE_KINDS.get((fmt, media))
        if known is None:
            return (DOCUMENTED_TYPE[fmt], *FILE_KINDS[(fmt, DOCUMENTED_TYPE[fmt])])
        return (media, *known)
