"""Sealmetrics export jobs: their states, and creating exactly one job per export.

``POST /exports`` is not idempotent and every running job holds one of the plan's
concurrent-export slots (Growth 1, Scale 3, Enterprise 10), so a create is never resent
blindly: after a lost answer the account's jobs are listed first and a job of exactly this
body created since the send is adopted. This module's loop is the create's only retry layer
(the transport sends each POST once).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_analytics_export.exceptions import (
    AnalyticsExportError,
    ApiError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitedError,
    SealmetricsExportExpiredError,
    SealmetricsExportFailedError,
    TransientApiError,
)
from airflow_provider_analytics_export.hooks.sealmetrics_spec import same_export
from airflow_provider_analytics_export.transport.retry import TRANSPORT_COUNTS, backoff_seconds

if TYPE_CHECKING:
    from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook

RUNNING_STATUSES: tuple[str, ...] = ("pending", "estimating", "generating")
COMPLETED, FAILED, EXPIRED = "completed", "failed", "expired"
#: A job created at most this long before our clock says we sent the create can still be ours.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: The backoff step a create refused under the cap waits when the answer names no Retry-After.
CAP_BACKOFF_STEP = 4


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


def created_at(job: Mapping[str, Any]) -> dt.datetime | None:
    """The job's ``created_at`` as an aware datetime (None when absent or unreadable)."""
    try:
        moment = dt.datetime.fromisoformat(str(job.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def jobs_since(
    hook: SealmetricsHook,
    body: Mapping[str, Any],
    account: str,
    since: dt.datetime,
    skip: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The account's jobs of exactly ``body`` created since ``since`` (less clock skew), oldest first.

    A job without a readable ``created_at`` counts as new. ``skip`` holds ids known to be
    someone else's (jobs of the same body that existed before our create).
    """
    since = since - CLOCK_SKEW
    found = [
        job
        for job in hook.list_exports(account)
        if same_export(job, body) and job.get("job_id") not in skip and (created_at(job) or since) >= since
    ]
    return sorted(found, key=lambda job: created_at(job) or since)


def earlier_try_job(
    hook: SealmetricsHook, context: Mapping[str, Any], body: Mapping[str, Any], account_id: str | None
) -> dict[str, Any] | None:
    """On a retry, the job of exactly ``body`` that an earlier try created in this run, if any.

    A try that died between the create and recording the job id (task state, XCom) would
    otherwise make the retry create a second job holding another concurrent-export slot.
    """
    ti, dag_run = context.get("ti"), context.get("dag_run")
    since = getattr(dag_run, "start_date", None)
    if ti is None or int(getattr(ti, "try_number", 1) or 1) <= 1 or since is None:
        return None
    job = hook.find_export(body, account_id, since)
    if job is not None:
        hook.log.info("Retry: adopting export %s created by an earlier try of this run.", job["job_id"])
    return job


def create_one_job(
    hook: SealmetricsHook, body: Mapping[str, Any], account: str, cap_wait_seconds: float
) -> dict[str, Any]:
    """Create exactly one export job for ``body`` and return it (see :meth:`SealmetricsHook.create_export`).

    One loop, one send per pass: a lost answer (dropped connection, timeout, 5xx after the
    server may have acted) counts against the hook's ``max_attempts`` and is backed off like
    any transport retry, then the jobs are looked at before the create is sent again; a
    refusal under the concurrent-export cap is waited out until ``cap_wait_seconds``.
    """
    earlier = {job["job_id"] for job in hook.list_exports(account) if same_export(job, body)}
    sent_at = dt.datetime.now(dt.timezone.utc)
    deadline = time.monotonic() + cap_wait_seconds
    losses = 0
    while True:
        try:
            return hook.post_export(body, account)
        except TransientApiError as exc:
            losses += 1
            if losses >= hook.max_attempts:
                raise
            wait = backoff_seconds(losses, exc.retry_after)
            TRANSPORT_COUNTS.add(retries=1)
            hook.log.warning("%s; retry %d/%d in %.1f s", exc, losses, hook.max_attempts - 1, wait)
            time.sleep(wait)
            adopted = _find_after_loss(hook, body, account, sent_at, earlier, exc)
            if adopted is not None:
                return adopted
        except (RateLimitedError, QuotaExceededError, InvalidRequestError) as exc:
            time.sleep(_slot_wait(hook, exc, account, deadline))


def _find_after_loss(
    hook: SealmetricsHook,
    body: Mapping[str, Any],
    account: str,
    sent_at: dt.datetime,
    earlier: set[str],
    exc: TransientApiError,
) -> dict[str, Any] | None:
    """The job a create whose answer was lost made, if it made one (else None: create again)."""
    hook.log.info("The create's answer was lost; looking for the job it may have made.")
    found = jobs_since(hook, body, account, sent_at, earlier)
    if not found and exc.status is None:
        # No answer at all: the server may still be acting on the create. Give it as
        # long again as we would have waited for the answer, then look once more.
        grace = hook.timeout[1]
        hook.log.info("No such job yet; looking once more in %.0f s before creating again.", grace)
        time.sleep(grace)
        found = jobs_since(hook, body, account, sent_at, earlier)
    if not found:
        return None
    hook.log.info("Adopted export %s, made by the create whose answer was lost.", found[0]["job_id"])
    return found[0]


def _slot_wait(hook: SealmetricsHook, exc: ApiError, account: str, deadline: float) -> float:
    """Seconds to wait before a refused create may succeed; re-raises ``exc`` when waiting cannot help."""
    if exc.status not in (409, 429):
        raise exc
    running = 0
    if exc.code != "rate_limit_exceeded":
        running = sum(job.get("status") in RUNNING_STATUSES for job in hook.list_exports(account))
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
    wait = backoff_seconds(CAP_BACKOFF_STEP, exc.retry_after)
    if time.monotonic() + wait > deadline:
        raise exc
    reason = f"{running} export(s) running (the plan's concurrent-export cap)" if running else "rate limited"
    code = exc.code or exc.status
    hook.log.warning("Sealmetrics create refused (%s): %s; waiting %.0f s.", code, reason, wait)
    return wait
