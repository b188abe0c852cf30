"""Wait for a Sealmetrics export job on the triggerer, so no worker slot is held while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_analytics_export.exceptions import ApiError
from airflow_provider_analytics_export.hooks.sealmetrics import (
    RUNNING_STATUSES,
    SealmetricsHook,
    job_outcome,
)

#: Event status when the job could not be polled at all (the message holds the API error).
ERROR = "error"


class SealmetricsExportTrigger(BaseTrigger):
    """Polls ``GET /exports/{job_id}`` asynchronously until the job leaves the running states.

    Fires exactly one event ``{"status", "message", "job_id"}``: status is ``completed``,
    ``failed``, ``expired`` or ``error`` (the API could not be polled after retries).

    :param job_id: the export's ``job_id``.
    :param account_id: the account (site slug); default: the connection's ``account_id`` extra.
    :param site_id: the old name of ``account_id``, still read from triggers serialized before it.
    :param sealmetrics_conn_id: the Airflow connection id.
    :param poll_interval: seconds between status calls.
    """

    def __init__(
        self,
        job_id: str,
        account_id: str | None = None,
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        poll_interval: float = 10.0,
        site_id: str | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.account_id = account_id or site_id
        self.sealmetrics_conn_id = sealmetrics_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "account_id": self.account_id,
                "sealmetrics_conn_id": self.sealmetrics_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        hook = SealmetricsHook(self.sealmetrics_conn_id)
        async with aiohttp.ClientSession() as session:
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
                await asyncio.sleep(self.poll_interval)

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "job_id": self.job_id})
