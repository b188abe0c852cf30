"""Sealmetrics exports API: async jobs (create, poll, download by token URL), estimate and stream."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import tenacity
from airflow.sdk import ObjectStoragePath
from airflow.sdk.log import mask_secret

from airflow_provider_analytics_export.exceptions import (
    AnalyticsExportError,
    ExportIntegrityError,
    InvalidRequestError,
    RateLimitedError,
)
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook, backoff_seconds
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.validation import check_choice
from airflow_provider_analytics_export.writer import ExportWriter

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
#: How a file of each format starts: (documented media type, first bytes, the same in words).
FILE_STARTS: dict[str, tuple[str, re.Pattern[bytes], str]] = {
    "csv": ("text/csv", re.compile(rb"[^\r\n]+"), "a CSV header line"),
    "json": ("application/json", re.compile(rb"\s*\["), "a JSON array"),
}
_LOOPBACK_NAMES = ("localhost",)


class SealmetricsExportFailedError(AnalyticsExportError):
    """The export job ended in ``failed``; the message carries the API's ``error_message``."""


class SealmetricsExportExpiredError(AnalyticsExportError):
    """The job's download link expired (status ``expired`` or HTTP 410): a new export is needed."""


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


def raise_for_outcome(status: str, message: str) -> None:
    """Turn a terminal non-success outcome into the matching exception."""
    if status == FAILED:
        raise SealmetricsExportFailedError(message)
    if status == EXPIRED:
        raise SealmetricsExportExpiredError(message)
    if status != COMPLETED:
        raise AnalyticsExportError(message)


class RecordCounter:
    """Counts the records of an export file chunk by chunk, without holding it.

    CSV: newlines outside quotes, minus the header (a doubled quote toggles twice, so quote
    parity stays exact). JSON: objects directly inside the top-level array, skipping strings;
    a Python-level scan, used only where the API limits the size (the stream endpoint).
    """

    _JSON_TOKENS = re.compile(rb'[\\"{}\[\]]')

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.newlines = 0
        self.in_quotes = False
        self.last_byte = b""
        self.objects = 0
        self.depth = 0
        self.skip = 0

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._feed_csv(chunk) if self.fmt == "csv" else self._feed_json(chunk)
            self.last_byte = chunk[-1:]

    def _feed_csv(self, chunk: bytes) -> None:
        if not self.in_quotes and b'"' not in chunk:
            self.newlines += chunk.count(b"\n")
            return
        for index, part in enumerate(chunk.split(b'"')):
            if index:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes:
                self.newlines += part.count(b"\n")

    def _feed_json(self, chunk: bytes) -> None:
        skip_until = self.skip
        for match in self._JSON_TOKENS.finditer(chunk):
            position, token = match.start(), match.group()
            if position < skip_until:
                continue
            if self.in_quotes:
                if token == b"\\":
                    skip_until = position + 2
                elif token == b'"':
                    self.in_quotes = False
            elif token == b'"':
                self.in_quotes = True
            elif token in (b"{", b"["):
                self.objects += token == b"{" and self.depth == 1
                self.depth += 1
            else:
                self.depth -= 1
        self.skip = max(0, skip_until - len(chunk))

    @property
    def rows(self) -> int:
        if self.fmt != "csv":
            return self.objects
        lines = self.newlines + (1 if self.last_byte not in (b"", b"\n") else 0)
        return max(0, lines - 1)


class SealmetricsHook(AnalyticsApiHook):
    """Talks to Sealmetrics' ``/api/v1/exports`` API.

    Connection: password = API key (``sm_...``), extra ``site_id`` = the default site.

    :param sealmetrics_conn_id: the Airflow connection id (``sealmetrics_default``).
    """

    conn_name_attr = "sealmetrics_conn_id"
    default_conn_name = "sealmetrics_default"
    conn_type = "sealmetrics"
    hook_name = "Sealmetrics"
    api_name = "Sealmetrics"
    default_host = "https://api.sealmetrics.com"

    def __init__(self, sealmetrics_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=sealmetrics_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.secret(self.connection.password, "API key (password)")}

    def site_id(self, site_id: str | None = None) -> str:
        """The given site id, else the connection's default ``site_id``."""
        return self.from_extra(site_id, "site_id")

    def check_connection(self) -> None:
        self.request("GET", EXPORTS_ENDPOINT, params={"site_id": self.site_id(), "limit": 1})

    # -- jobs -----------------------------------------------------------------------
    def create_export(
        self,
        body: Mapping[str, Any],
        site_id: str | None = None,
        cap_wait_seconds: float = DEFAULT_CAP_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Create an export job from :func:`export_body` and return the job object.

        A 429 (the plan's concurrent-export cap, which lasts as long as the running jobs)
        is waited out for up to ``cap_wait_seconds`` on top of the transport's own retries.
        """
        params = {"site_id": self.site_id(site_id)}
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(cap_wait_seconds),
            wait=_cap_wait,
            retry=tenacity.retry_if_exception_type(RateLimitedError),
            before_sleep=self._log_cap_wait,
            reraise=True,
        )
        response = retrying(self.request, "POST", EXPORTS_ENDPOINT, params=params, json=dict(body))
        job = self._received(response["job"])
        self.log.info("%s %s", response.get("message") or "Export created.", job_outcome(job)[1])
        return job

    def _log_cap_wait(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("Concurrent-export cap: %s; waiting %.0f s for a free slot.", exc, wait)

    def estimate_export(self, body: Mapping[str, Any], site_id: str | None = None) -> dict[str, Any]:
        """Rows, size and whether a background job will be used, without creating a job."""
        return self.request(
            "POST", ESTIMATE_ENDPOINT, params={"site_id": self.site_id(site_id)}, json=dict(body)
        )

    def get_export(self, job_id: str, site_id: str | None = None) -> dict[str, Any]:
        """The job's current state (status, progress_percent, download_url once completed)."""
        return self._received(
            self.request("GET", f"{EXPORTS_ENDPOINT}/{job_id}", params={"site_id": self.site_id(site_id)})
        )

    async def aget_export(
        self, session: aiohttp.ClientSession, job_id: str, site_id: str | None = None
    ) -> dict[str, Any]:
        """:meth:`get_export` for triggers (same retries and errors, no blocking I/O)."""
        await self.aload_connection()
        job = await self.arequest(
            session, "GET", f"{EXPORTS_ENDPOINT}/{job_id}", params={"site_id": self.site_id(site_id)}
        )
        return self._received(job)

    def list_exports(
        self, site_id: str | None = None, include_expired: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every export of the site, newest first, fetching page after page until ``total``."""
        params: dict[str, Any] = {
            "site_id": self.site_id(site_id),
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

    def cancel_export(self, job_id: str, site_id: str | None = None) -> None:
        """Cancel a pending export or delete a completed one (204)."""
        self.request(
            "DELETE",
            f"{EXPORTS_ENDPOINT}/{job_id}",
            params={"site_id": self.site_id(site_id)},
            parse=lambda response: None,
        )

    def _received(self, job: dict[str, Any]) -> dict[str, Any]:
        """Mask the download token of a job the moment it arrives, before anything can log it."""
        url = job.get("download_url")
        if url:
            mask_secret(_download_token(url))
        return job

    # -- files ----------------------------------------------------------------------
    def stream_export(
        self,
        body: Mapping[str, Any],
        destination: str | ObjectStoragePath,
        site_id: str | None = None,
        destination_conn_id: str | None = None,
    ) -> dict[str, Any]:
        """Stream a small export (< 10,000 rows) straight into ``destination``.

        Raises :class:`InvalidRequestError` with status 413 when the export is too large;
        callers fall back to a background job.
        """
        fmt = body.get("format", "csv")
        return self.request(
            "POST",
            STREAM_ENDPOINT,
            params={"site_id": self.site_id(site_id)},
            json=dict(body),
            stream=True,
            parse=self._copier(
                destination, destination_conn_id, fmt, None, ("POST", STREAM_ENDPOINT, "Sealmetrics stream")
            ),
        )

    def download_export(
        self,
        job_or_url: Mapping[str, Any] | str,
        destination: str | ObjectStoragePath,
        destination_conn_id: str | None = None,
        export_format: str = "csv",
    ) -> dict[str, Any]:
        """Download a completed job's file into ``destination`` atomically; bounded memory.

        Given a job, its ``actual_rows`` is checked against the CSV record count before the
        file is committed. The download URL gets no API key and never appears in logs.
        ``export_format`` only matters for a bare URL (a job says its own format).
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
                    destination,
                    destination_conn_id,
                    fmt,
                    expected,
                    ("GET", DOWNLOAD_ENDPOINT_REDACTED, "Sealmetrics download"),
                ),
            )
        except InvalidRequestError as exc:
            if exc.status == 410:
                raise SealmetricsExportExpiredError(
                    f"Sealmetrics download link expired ({exc.api_message}); create a new export."
                ) from None
            raise

    def checked_download_url(self, url: str) -> str:
        """Refuse a link to another host, or over plain http to anything but loopback."""
        if url.startswith("/"):
            url = f"{self.base_url}{url}"
        mask_secret(_download_token(url))
        link, api = urlsplit(url), urlsplit(self.base_url)
        if link.scheme != "https" and not (link.scheme == "http" and _is_loopback(link.hostname)):
            raise AnalyticsExportError(
                f"Refusing to download over {link.scheme!r}: use https (http only for a loopback host)."
            )
        if (link.hostname, _port(link)) != (api.hostname, _port(api)):
            raise AnalyticsExportError(
                f"Refusing to download from {link.hostname!r} port {_port(link)}: the download URL "
                f"must be on the connection's host {api.hostname!r} port {_port(api)}."
            )
        if not link.path.startswith(DOWNLOAD_PREFIX):
            raise AnalyticsExportError(
                f"Unexpected download URL path; expected {DOWNLOAD_ENDPOINT_REDACTED}."
            )
        return url

    def _copier(
        self,
        destination: str | ObjectStoragePath,
        destination_conn_id: str | None,
        fmt: str,
        job: Mapping[str, Any] | None,
        request: tuple[str, str, str],
    ) -> Callable[[requests.Response], dict[str, Any]]:
        """A ``parse`` callback that copies the body into a fresh atomic writer (so a retry restarts).

        ``request`` is (method, endpoint, label for progress logs). A body that does not start
        like a ``fmt`` file (an empty 200, an HTML page) is refused before anything is committed.
        """
        method, endpoint, label = request

        def copy(response: requests.Response) -> dict[str, Any]:
            total = int(response.headers.get("Content-Length") or 0) or None
            progress = ExportProgress(cast("logging.Logger", self.log), label, unit="bytes")
            counter = RecordCounter(fmt)
            count = fmt == "csv" or job is None
            content_type, start, expected = FILE_STARTS[fmt]
            chunks = self.file_chunks(
                response,
                method,
                endpoint,
                content_type=content_type,
                start=start,
                expected=expected,
                chunk_size=DOWNLOAD_CHUNK_BYTES,
            )
            with ExportWriter(destination, "raw", destination_conn_id) as writer:
                for chunk in chunks:
                    writer.write_bytes(chunk)
                    if count:
                        counter.feed(chunk)
                    progress.update(len(chunk), pages=0, total=total)
                writer.rows = _checked_rows(fmt, counter, job)
                summary = {**writer.summary(), "format": fmt}
            progress.finish()
            return summary

        return copy


def _checked_rows(fmt: str, counter: RecordCounter, job: Mapping[str, Any] | None) -> int:
    """Rows of the file: counted (CSV, or a streamed file), cross-checked with a job's ``actual_rows``.

    A downloaded JSON file is not scanned (too slow in Python for large files): ``actual_rows``.
    """
    expected = job.get("actual_rows") if job else None
    if fmt != "csv" and job is not None:
        return int(expected or 0)
    if expected is not None and int(expected) != counter.rows:
        raise ExportIntegrityError(
            f"Sealmetrics export {job.get('job_id') if job else ''} reports actual_rows={expected} but "
            f"the downloaded file holds {counter.rows} records; the file was not written."
        )
    return counter.rows


def _cap_wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    return backoff_seconds(state.attempt_number + 3, getattr(exc, "retry_after", None))


def _download_token(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def _port(parts: Any) -> int | None:
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
