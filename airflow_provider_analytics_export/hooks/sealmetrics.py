"""Sealmetrics exports API: async jobs (create, poll, download by token URL), estimate and stream.

Written against the vendor's current docs and OpenAPI spec (``sealmetrics/docs``,
``static/openapi.json``): every ``/exports*`` route takes ``account_id``, errors come in one
envelope, ``POST /exports`` is not idempotent and ``date_from``/``date_to`` are inclusive
local days in the account's time zone. Beside this module: ``sealmetrics_spec`` (what a
request may hold), ``sealmetrics_jobs`` (job states, exactly one job per export),
``sealmetrics_errors`` (the error envelope) and ``sealmetrics_files`` (the files it hands out).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, cast

from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_analytics_export.codec import loads
from airflow_provider_analytics_export.exceptions import (
    ApiError,
    InvalidRequestError,
    SealmetricsExportExpiredError,
    SealmetricsExportTimeoutError,
)
from airflow_provider_analytics_export.extras import ExtraField
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook
from airflow_provider_analytics_export.hooks.sealmetrics_errors import error_envelope, with_envelope
from airflow_provider_analytics_export.hooks.sealmetrics_files import accepted_types, file_copier
from airflow_provider_analytics_export.hooks.sealmetrics_jobs import (
    EXPIRED,
    FAILED,
    RUNNING_STATUSES,
    create_one_job,
    job_outcome,
    jobs_since,
    raise_for_outcome,
    timeout_message,
)
from airflow_provider_analytics_export.hooks.sealmetrics_spec import (
    EXPORT_FORMATS,
    EXPORT_TYPES,
    TIMEZONE_EXTRA,
    export_body,
)
from airflow_provider_analytics_export.paging.paginators import OffsetPaginator, Page, PagingFields
from airflow_provider_analytics_export.transport.downloads import (
    Sink,
    checked_link,
    destination_errors_as_themselves,
    mask_link_token,
)
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.validation import check_choice

if TYPE_CHECKING:
    import aiohttp

#: Re-exported: what a caller builds a request with.
__all__ = ["EXPORT_FORMATS", "EXPORT_TYPES", "SealmetricsHook", "export_body", "resolve_account_id"]

EXPORTS_ENDPOINT = "/api/v1/exports"
ESTIMATE_ENDPOINT = f"{EXPORTS_ENDPOINT}/estimate"
STREAM_ENDPOINT = f"{EXPORTS_ENDPOINT}/stream"
DOWNLOAD_PREFIX = f"{EXPORTS_ENDPOINT}/download/"
#: What logs and errors show instead of the download URL: the token is a bearer secret.
DOWNLOAD_ENDPOINT_REDACTED = f"{DOWNLOAD_PREFIX}<token>"
LIST_PAGE_SIZE = 100  # the documented maximum
#: How long create_export keeps waiting for a free slot under the plan's concurrent-export cap.
DEFAULT_CAP_WAIT_SECONDS = 3600.0
ACCOUNT_EXTRA = "account_id"
#: The account's old extra name: read from connections made before ``account_id``, but no
#: longer in the form (so new connections do not get it).
DEPRECATED_ACCOUNT_EXTRA = ExtraField("site_id", "Site ID (deprecated)", "Old name of account_id.")


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
        current = self.extra(ACCOUNT_EXTRA)
        old = DEPRECATED_ACCOUNT_EXTRA.read(self.extras.get(DEPRECATED_ACCOUNT_EXTRA.name), self._where)
        if not current and old:
            warnings.warn(
                f"Connection {self.conn_id!r}: extra {DEPRECATED_ACCOUNT_EXTRA.name!r} is deprecated; "
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
        error = super().api_error(method, endpoint, status, {"message": message}, text, headers)
        request_id = request_id or headers.get("X-Request-ID")
        return with_envelope(error, code, request_id, headers.get("Retry-After"))

    # -- jobs -----------------------------------------------------------------------
    def create_export(
        self,
        body: Mapping[str, Any],
        account_id: str | None = None,
        cap_wait_seconds: float = DEFAULT_CAP_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Create exactly one export job for ``body`` (from :func:`export_body`) and return it.

        ``POST /exports`` is not idempotent, so it is never resent blindly: after a lost answer
        (dropped connection, timeout, 5xx after the server may have acted) the account's
        exports are listed and a job of exactly this body created since we sent it is adopted;
        only when there is none (looked for again after the read timeout when no answer came
        at all, since the server may still be acting) is the create sent again, up to the
        hook's ``max_attempts``. A refused create is not a lost one: ``rate_limit_exceeded``
        waits its ``Retry-After``; a full concurrent-export cap (429 or 409 while exports are
        running) is waited out for up to ``cap_wait_seconds`` with a log line; an exhausted plan
        quota with nothing running fails at once.
        """
        return create_one_job(self, body, self.account_id(account_id), cap_wait_seconds)

    def post_export(self, body: Mapping[str, Any], account: str) -> dict[str, Any]:
        """One ``POST /exports``, sent once: :meth:`create_export` decides whether to send another."""
        response = self.request(
            "POST",
            EXPORTS_ENDPOINT,
            parse=lambda r: loads(r.content),
            retry=False,
            params={"account_id": account},
            json=dict(body),
        )
        job = self._received(
            self.require(response, "job", method="POST", endpoint=EXPORTS_ENDPOINT, status=201, kind=dict)
        )
        self.log.info("%s %s", response.get("message") or "Export created.", job_outcome(job)[1])
        return job

    def find_export(
        self, body: Mapping[str, Any], account_id: str | None, since: dt.datetime
    ) -> dict[str, Any] | None:
        """The newest usable job of exactly ``body`` created since ``since`` (a retried task's own)."""
        found = jobs_since(self, body, self.account_id(account_id), since)
        usable = [job for job in found if job.get("status") not in (FAILED, EXPIRED)]
        return usable[-1] if usable else None

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
        params = {"account_id": self.account_id(account_id), "include_expired": str(include_expired).lower()}

        def fetch(fields: PagingFields) -> Page:
            page: dict[str, Any] = self.request("GET", EXPORTS_ENDPOINT, params={**params, **fields})
            return Page(page.get("exports") or [], int(page.get("total") or 0))

        for _, page in OffsetPaginator(LIST_PAGE_SIZE).pages(fetch):
            for job in page.rows:
                yield self._received(job)

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
        return self._copy(
            open_sink,
            fmt,
            None,
            "POST",
            STREAM_ENDPOINT,
            params={"account_id": self.account_id(account_id)},
            json=dict(body),
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
            return self._copy(
                open_sink, fmt, expected, "GET", DOWNLOAD_ENDPOINT_REDACTED, url=url, authenticated=False
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

    def _copy(
        self,
        open_sink: Callable[[str], Sink],
        fmt: str,
        job: Mapping[str, Any] | None,
        method: str,
        endpoint: str,
        **request: Any,
    ) -> Sink:
        """Send a request whose answer is a file of ``fmt`` and copy it into ``open_sink(layout)``.

        ``Accept`` names the media types ``fmt`` may arrive as. A failing destination is raised
        as itself after this one request, never retried as if the answer were bad.
        """
        label = "Sealmetrics stream" if method == "POST" else "Sealmetrics download"
        with destination_errors_as_themselves():
            return self.request(
                method,
                endpoint,
                stream=True,
                headers={"Accept": accepted_types(fmt)},
                parse=file_copier(self.log, open_sink, fmt, job, (method, endpoint, label)),
                **request,
            )
