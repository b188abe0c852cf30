"""Wait for a Sealmetrics export job: poke, reschedule or deferrable (no worker slot held)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, resolve_account_id
from airflow_provider_analytics_export.hooks.sealmetrics_jobs import (
    EXPIRED,
    FAILED,
    RUNNING_STATUSES,
    job_outcome,
    raise_for_outcome,
)
from airflow_provider_analytics_export.operators.sealmetrics import default_deferrable
from airflow_provider_analytics_export.triggers.sealmetrics import SealmetricsExportTrigger


class SealmetricsExportSensor(BaseSensorOperator):
    """Succeeds when the export is ``completed``; fails at once when it ``failed`` or ``expired``.

    A failed or expired job never recovers, so those fail without retries (retry the
    task that creates the export instead). Every poke logs status and ``progress_percent``.

    :param task_id: the task id.
    :param job_id: the export's ``job_id`` (templated), e.g. the create task's return value.
    :param account_id: the account, i.e. the site slug (templated); default: the connection's
        ``account_id`` extra.
    :param site_id: deprecated name of ``account_id``.
    :param sealmetrics_conn_id: the Sealmetrics connection (templated).
    :param deferrable: wait on the triggerer; default ``[operators] default_deferrable``.
    :param poke_interval: seconds between status calls.
    :param timeout: seconds to wait before failing.
    """

    template_fields: Sequence[str] = ("job_id", "account_id", "sealmetrics_conn_id")

    def __init__(
        self,
        *,
        task_id: str,
        job_id: str,
        account_id: str | None = None,
        site_id: str | None = None,
        sealmetrics_conn_id: str = SealmetricsHook.default_conn_name,
        deferrable: bool | None = None,
        poke_interval: float = 30.0,
        timeout: float = 6 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job_id = job_id
        self.account_id = resolve_account_id(account_id, site_id, f"{type(self).__name__} {task_id!r}")
        self.sealmetrics_conn_id = sealmetrics_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if not self.poke(context):
            self.defer(
                trigger=SealmetricsExportTrigger(
                    self.job_id, self.account_id, self.sealmetrics_conn_id, self.poke_interval
                ),
                method_name="execute_complete",
                timeout=dt.timedelta(seconds=self.timeout),
            )
        return None

    def poke(self, context: Context) -> bool:
        job = SealmetricsHook(self.sealmetrics_conn_id).get_export(self.job_id, self.account_id)
        status, message = job_outcome(job)
        self.log.info(
            "Sealmetrics export %s: status=%s progress=%s%%", self.job_id, status, job.get("progress_percent")
        )
        if status in RUNNING_STATUSES:
            return False
        self._finish(status, message)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """Resume after the trigger fired with ``{status, message, job_id}``."""
        self.log.info("%s", event["message"])
        self._finish(event["status"], event["message"])

    @staticmethod
    def _finish(status: str, message: str) -> None:
        if status in (FAILED, EXPIRED):  # final for this job id: retrying the sensor cannot help
            raise AirflowFailException(message)
        raise_for_outcome(status, message)
