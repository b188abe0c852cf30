"""Wait for a Sealmetrics export job on the triggerer, so no worker slot is held while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_analytics_export.exceptions import ApiError
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook
from airflow_provider_analytics_export.hooks.sealmetrics_jobs import (
    RUNNING_STATUSES,
    job_outcome,
    timeout_message,
)
from airflow_provider_analytics_export.transport.loop_sessions import loop_session

#: Event status when the job could not be polled at all (the message holds the API error).
ERROR = "error"
#: Event status when the job was still running at ``deadline`` (the operator then cancels it).
TIMEOUT = "timeout"


class SealmetricsExportTrigger(BaseTrigger):
    """Polls ``GET /exports/{job_id}`` asynchronously until the job leaves the running states.

    Fires exactly one event ``{"status", "message", "job_id"}``: status is ``completed``,
    ``failed``, ``expired``, ``error`` (the API could not be polled after retries) or
    ``timeout`` (still running at ``deadline``). The deadline is a wall-clock time, so a
    triggerer restart does not extend the wait; Airflow's own deferral timeout would fail the
    task without resuming it, leaving the job running, so the operator's timeout lives here.

    :param job_id: the export's ``job_id``.
    :param account_id: the account (site slug); default: the connection's ``account_id`` extra.
    :param sealmetrics_conn_id: the Airflow connection id.
    :param poll_interval: seconds between status calls.
    :param site_id: the old name of ``account_id``, still read from triggers serialized before it.
    :param timeout: seconds after which a running job ends the wait with a ``timeout`` event;
        None waits as long as the job runs (the sensor, whose own timeout applies).
    :param deadline: the Unix time that ``timeout`` set when the trigger was first made (kept
        when it is serialized).
    """

    def __init__(
        self,
        job_id: str,
        account_id: str | None = None,
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        poll_interval: float = 10.0,
        site_id: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.account_id = account_id or site_id
        self.sealmetrics_conn_id = sealmetrics_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = timeout
        self.deadline = deadline if deadline is not None or timeout is None else time.time() + timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "account_id": self.account_id,
                "sealmetrics_conn_id": self.sealmetrics_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SealmetricsHook(self.sealmetrics_conn_id)
        session = await loop_session()
        while True:
            try:
                job = await hook.aget_export(session, self.job_id, self.account_id)
            except ApiError as exc:
                yield self._event(ERROR, str(exc))
                return
            status, message = job_outcome(job)
            self.log.info(
                "Sealmetrics export %s: status=%s progress=%s%%",
                self.job_id,
                status,
                job.get("progress_percent"),
            )
            if status not in RUNNING_STATUSES:
                yield self._event(status, message)
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield self._event(TIMEOUT, timeout_message(self.job_id, status, self.timeout or 0.0))
                return
            await asyncio.sleep(self.poll_interval)

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "job_id": self.job_id})
