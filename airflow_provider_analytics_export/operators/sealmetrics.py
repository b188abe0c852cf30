"""Sealmetrics exports: create a job, download it, or do both in one (resumable, deferrable) task."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from airflow_provider_analytics_export.compat import ResumableJobMixin, conf
from airflow_provider_analytics_export.exceptions import (
    InvalidRequestError,
    SealmetricsExportExpiredError,
)
from airflow_provider_analytics_export.files.writer import ExportWriter, resolve_format
from airflow_provider_analytics_export.hooks.sealmetrics import (
    EXPORTS_ENDPOINT,
    SealmetricsHook,
    resolve_account_id,
)
from airflow_provider_analytics_export.hooks.sealmetrics_jobs import (
    COMPLETED,
    EXPIRED,
    RUNNING_STATUSES,
    earlier_try_job,
    job_outcome,
    public_job,
    raise_for_outcome,
)
from airflow_provider_analytics_export.hooks.sealmetrics_spec import (
    EXPORT_FORMATS,
    export_body,
    local_days,
    validate_static,
    validate_static_days,
)
from airflow_provider_analytics_export.operators.base import BaseExportOperator, DestinationOperator
from airflow_provider_analytics_export.triggers.sealmetrics import TIMEOUT, SealmetricsExportTrigger
from airflow_provider_analytics_export.windows import resolve_window

#: XCom key under which SealmetricsCreateExportOperator pushes the job (without its download URL).
XCOM_JOB_KEY = "sealmetrics_export_job"
#: Status reported for a stored job id the API no longer knows (e.g. deleted by on_kill).
NOT_FOUND = "not_found"
#: How much longer than the trigger's own deadline Airflow waits before failing the deferral:
#: only a triggerer that never ran the trigger gets there (the job is then left to on_kill).
DEFERRAL_GRACE = dt.timedelta(minutes=5)


def file_writers(destination: str, destination_conn_id: str | None) -> Callable[[str], ExportWriter]:
    """Opens a fresh atomic writer of ``destination`` for a file of one record layout (per attempt).

    The destination's storage is resolved here, so a scheme no filesystem serves (``wasb://``
    without its provider) fails before the request, not after the API did the work.
    """
    path = ObjectStoragePath(destination, conn_id=destination_conn_id)
    path.fs  # noqa: B018 -- Airflow 3.0's ObjectStoragePath resolves it lazily, after the request
    return lambda layout: ExportWriter(path, layout)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when the task is built."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class SealmetricsCreateExportOperator(BaseOperator):
    """Create a Sealmetrics export job and return its ``job_id``.

    The job (without its download URL, whose token is a secret) is pushed under the XCom
    key ``sealmetrics_export_job``. Pair with :class:`SealmetricsExportSensor` and
    :class:`SealmetricsDownloadExportOperator`, or use :class:`SealmetricsExportOperator`.

    :param task_id: the task id.
    :param export_type: one of the documented export types, e.g. ``pages`` (templated).
    :param account_id: the account, i.e. the site slug (templated); default: the connection's
        ``account_id`` extra.
    :param site_id: deprecated name of ``account_id``.
    :param date_from: first local day, inclusive (templated); default: the data interval's first
        day in the account's time zone (connection extra ``timezone``).
    :param date_to: last local day, inclusive (templated); default: the data interval's last day
        there. A data interval that is not whole local days fails before any request.
    :param filters: documented filter keys to string values within the spec's lengths, or None
        for no filter (templated).
    :param export_format: ``csv`` or ``json`` (templated).
    :param sealmetrics_conn_id: the Sealmetrics connection (templated).
    """

    template_fields: Sequence[str] = (
        "export_type",
        "account_id",
        "date_from",
        "date_to",
        "filters",
        "export_format",
        "sealmetrics_conn_id",
    )
    template_fields_renderers = {"filters": "json"}

    def __init__(
        self,
        *,
        task_id: str,
        export_type: str,
        account_id: str | None = None,
        site_id: str | None = None,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
        filters: dict[str, str | None] | None = None,
        export_format: str = "csv",
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **kwargs)
        self.export_type = export_type
        self.account_id = resolve_account_id(account_id, site_id, f"{type(self).__name__} {task_id!r}")
        self.date_from = date_from
        self.date_to = date_to
        self.filters = filters
        self.export_format = export_format
        self.sealmetrics_conn_id = sealmetrics_conn_id
        validate_static(export_type, export_format, filters)
        validate_static_days(date_from, date_to)

    def execute(self, context: Context) -> str:
        hook = SealmetricsHook(self.sealmetrics_conn_id)
        first, last = self.date_from, self.date_to
        if first in (None, "") or last in (None, ""):
            window_first, window_last = local_days(
                *resolve_window(None, None, context), hook.account_timezone
            )
            first, last = first or window_first, last or window_last
        body = export_body(self.export_type, first, last, self.export_format, self.filters)
        job = earlier_try_job(hook, context, body, self.account_id) or hook.create_export(
            body, self.account_id
        )
        context["ti"].xcom_push(key=XCOM_JOB_KEY, value=public_job(job))
        return str(job["job_id"])


class SealmetricsDownloadExportOperator(DestinationOperator):
    """Download a completed export job into ``destination`` atomically.

    Returns ``{"uri", "rows", "bytes", "format", "job_id"}``; for CSV the record count is
    checked against the job's ``actual_rows`` before the file is committed.

    :param task_id: the task id.
    :param job_id: the export's ``job_id`` (templated), e.g. the create task's return value.
    :param destination: where to write (templated), e.g. ``s3://bucket/sealmetrics/{{ ds }}/pages.csv``.
    :param account_id: the account, i.e. the site slug (templated); default: the connection's
        ``account_id`` extra.
    :param site_id: deprecated name of ``account_id``.
    :param destination_conn_id: connection for the destination's object storage (templated).
    :param sealmetrics_conn_id: the Sealmetrics connection (templated).
    """

    lineage_source = (SealmetricsHook, EXPORTS_ENDPOINT)
    template_fields: Sequence[str] = (
        "job_id",
        "destination",
        "account_id",
        "destination_conn_id",
        "sealmetrics_conn_id",
    )

    def __init__(
        self,
        *,
        task_id: str,
        job_id: str,
        destination: str | ObjectStoragePath,
        account_id: str | None = None,
        site_id: str | None = None,
        destination_conn_id: str | None = None,
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **kwargs)
        self.job_id = job_id
        self.destination = str(destination)
        self.account_id = resolve_account_id(account_id, site_id, f"{type(self).__name__} {task_id!r}")
        self.destination_conn_id = destination_conn_id
        self.sealmetrics_conn_id = sealmetrics_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        hook = SealmetricsHook(self.sealmetrics_conn_id)
        writers = file_writers(self.destination, self.destination_conn_id)
        job = hook.get_export(self.job_id, self.account_id)
        writer = hook.download_export(job, writers)
        return {**writer.summary(), "job_id": self.job_id}


class SealmetricsExportOperator(ResumableJobMixin, BaseExportOperator):
    """Export one Sealmetrics export type for [start, end) into ``destination``, in one task.

    Small exports (the estimate says no background job) use the stream endpoint; a 413
    falls back to a background job. A job is created, waited for (on the triggerer when
    ``deferrable``) and downloaded. Its id is kept in the task state store, so a retry after
    a worker crash reconnects to it instead of creating a second job. A download link that
    expired gets one fresh job; ``on_kill`` cancels the job. A retry whose try left no job id
    behind (the worker died between create and store) adopts the job of exactly this export
    that the run created, instead of creating a second one. [start, end) must be whole
    local days in the account's time zone (connection extra ``timezone``, default
    UTC); anything else fails before any request.

    :param task_id: the task id.
    :param export_type: one of the documented export types (templated).
    :param destination: where to write (templated); ``.csv``/``.json`` sets the format.
    :param account_id: the account, i.e. the site slug (templated); default: the connection's
        ``account_id`` extra.
    :param site_id: deprecated name of ``account_id``.
    :param filters: documented filter keys to string values within the spec's lengths, or None
        for no filter (templated).
    :param start: window start (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param output_format: ``csv`` or ``json``; default: the destination's suffix.
    :param destination_conn_id: connection for the destination's object storage (templated).
    :param sealmetrics_conn_id: the Sealmetrics connection (templated).
    :param deferrable: wait on the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between status calls while the job runs.
    :param timeout: seconds to wait for the job (in the worker, or deferred); a job still running
        then is cancelled and the task fails with ``SealmetricsExportTimeoutError``.
    :param cap_wait_seconds: how long to wait for a free slot under the plan's concurrent-export cap.
    :param durable: keep the job id in the task state store to reconnect on retry (Airflow 3.3+).
    """

    lineage_source = (SealmetricsHook, EXPORTS_ENDPOINT)
    filter_fields = ("filters",)
    #: Vendor-computed daily aggregates, settling undocumented (README "Late data").
    default_settle = dt.timedelta(hours=2)
    template_fields: Sequence[str] = (
        *BaseExportOperator.template_fields,
        "export_type",
        "account_id",
        "filters",
        "sealmetrics_conn_id",
    )
    template_fields_renderers = {"filters": "json"}
    allowed_formats = EXPORT_FORMATS
    external_id_key = "sealmetrics_job_id"

    def __init__(
        self,
        *,
        task_id: str,
        export_type: str,
        account_id: str | None = None,
        site_id: str | None = None,
        filters: dict[str, str | None] | None = None,
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: float = 15.0,
        timeout: float = 6 * 3600.0,
        cap_wait_seconds: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **kwargs)
        self.export_type = export_type
        self.account_id = resolve_account_id(account_id, site_id, f"{type(self).__name__} {task_id!r}")
        self.filters = filters
        self.sealmetrics_conn_id = sealmetrics_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cap_wait_seconds = cap_wait_seconds
        #: The job this try runs, for :meth:`on_kill` (which gets no context).
        self.job_id: str | None = None
        #: The job as the wait in this worker last saw it (completed), for the download.
        self._finished: dict[str, Any] | None = None
        validate_static(export_type, "csv", filters)

    @cached_property
    def hook(self) -> SealmetricsHook:
        return SealmetricsHook(self.sealmetrics_conn_id)

    def body(self, context: Context) -> dict[str, Any]:
        """The request body for the rendered arguments (validated before any request)."""
        fmt = resolve_format(self.destination, self.output_format, self.allowed_formats)
        first, last = local_days(*self.export_window(context), self.hook.account_timezone)
        return export_body(self.export_type, first, last, fmt, self.filters)

    # -- entry points ---------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        body = self.body(context)
        writers = file_writers(self.destination, self.destination_conn_id)
        if self._stored_job_id(context) is None and self._streamable(body):
            try:
                writer = self.hook.stream_export(body, writers, self.account_id)
            except InvalidRequestError as exc:
                if exc.status != 413:
                    raise
                self.log.info("Stream refused (%s); creating a background job instead.", exc.api_message)
            else:
                return self._result(writer.summary(), body, None)
        result = self.execute_resumable(context)
        if result is None:  # reconnected: the mixin returns poll_until_complete()'s None
            result = self.get_job_result(self._stored_job_id(context), context)
        return result

    def execute_complete(self, context: Context, event: dict[str, Any], refreshed: bool = False) -> Any:
        """Resume after the trigger fired: download, or cancel a job that outlived ``timeout`` and fail."""
        self.job_id = job_id = str(event["job_id"])
        self.log.info("%s", event["message"])
        if event["status"] == TIMEOUT:
            self.hook.cancel_after_timeout(job_id, self.account_id, event["message"])
        if event["status"] not in (COMPLETED, EXPIRED):  # expired: _download makes one fresh job
            raise_for_outcome(event["status"], event["message"])
        return self._download(context, job_id, refreshed)

    def on_kill(self) -> None:
        """Cancel the running job so it does not keep a slot of the plan's concurrent-export cap."""
        if self.job_id:
            self.log.info("Cancelling Sealmetrics export %s.", self.job_id)
            self.hook.cancel_export(self.job_id, self.account_id)

    # -- ResumableJobMixin ----------------------------------------------------------
    def submit_job(self, context: Context) -> str:
        body = self.body(context)
        job = earlier_try_job(self.hook, context, body, self.account_id) or self.hook.create_export(
            body, self.account_id, self.cap_wait_seconds
        )
        return str(job["job_id"])

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            job = self.hook.get_export(str(external_id), self.account_id)
        except InvalidRequestError as exc:
            if exc.status != 404:
                raise
            return NOT_FOUND
        self.log.info("Found this task's earlier export: %s", job_outcome(job)[1])
        return str(job["status"])

    def is_job_active(self, status: str) -> bool:
        return status in RUNNING_STATUSES

    def is_job_succeeded(self, status: str) -> bool:
        return status == COMPLETED

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        self._wait(str(external_id), refreshed=False)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        return self._download(context, str(external_id), refreshed=False)

    # -- helpers --------------------------------------------------------------------
    def _wait(self, job_id: str, refreshed: bool) -> None:
        """Wait for the job here, or defer to the triggerer (resuming in :meth:`execute_complete`).

        Either way a job still running after ``timeout`` is cancelled and the task fails. The
        job as the wait last saw it (completed, with its download link) is kept for
        :meth:`_download`, which then needs no second status call.
        """
        self.job_id = job_id
        if self.deferrable:
            self.defer(
                trigger=SealmetricsExportTrigger(
                    job_id,
                    self.account_id,
                    self.sealmetrics_conn_id,
                    self.poll_interval,
                    timeout=self.timeout,
                ),
                method_name="execute_complete",
                kwargs={"refreshed": refreshed},
                timeout=dt.timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
            )
        self._finished = self.hook.wait_for_export(
            job_id, self.account_id, timeout=self.timeout, poll_interval=self.poll_interval
        )

    def _download(self, context: Context, job_id: str, refreshed: bool) -> dict[str, Any]:
        """Download the job's file; an expired link gets one fresh job (waited for, then downloaded)."""
        while True:
            finished, self._finished = self._finished, None
            job = finished if finished and finished.get("job_id") == job_id else None
            job = job or self.hook.get_export(job_id, self.account_id)
            try:
                writer = self.hook.download_export(
                    job, file_writers(self.destination, self.destination_conn_id)
                )
            except SealmetricsExportExpiredError as exc:
                if refreshed:
                    raise SealmetricsExportExpiredError(
                        f"{exc} A fresh export's link expired too before it could be downloaded; giving up."
                    ) from None
                self.log.warning("%s Creating one fresh export.", exc)
            else:
                return self._result(writer.summary(), self.body(context), job_id)
            refreshed = True
            job_id = str(
                self.hook.create_export(self.body(context), self.account_id, self.cap_wait_seconds)["job_id"]
            )
            store = context.get("task_state_store")
            if store is not None and self.durable:
                store.set(self.external_id_key, job_id)
            self._wait(job_id, refreshed=True)  # defers (the download resumes there), or returns when done

    def _stored_job_id(self, context: Context) -> Any:
        store = context.get("task_state_store")
        return store.get(self.external_id_key) if store is not None and self.durable else None

    def _streamable(self, body: dict[str, Any]) -> bool:
        estimate = self.hook.estimate_export(body, self.account_id)
        self.log.info(
            "Estimate: %s rows, %s, background job: %s",
            estimate.get("estimated_rows"),
            estimate.get("estimated_size_human"),
            estimate.get("will_use_background_job"),
        )
        return not estimate.get("will_use_background_job")

    def _result(self, summary: dict[str, Any], body: dict[str, Any], job_id: str | None) -> dict[str, Any]:
        return {
            **summary,
            "job_id": job_id,
            "method": "job" if job_id else "stream",
            "export_type": body["export_type"],
            "date_from": body["date_from"],
            "date_to": body["date_to"],
        }
