"""SealmetricsExportTrigger run with asyncio against the sandbox."""

from __future__ import annotations

import asyncio
import importlib
import re
import time

from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, export_body
from airflow_provider_analytics_export.triggers.sealmetrics import SealmetricsExportTrigger
from analytics_export_sandbox.sealmetrics import FAIL_MESSAGE

DAY = "2025-01-10"


def run(trigger: SealmetricsExportTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_completed_job_fires_one_event_after_polling(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_job_delay": 1.0})
    job = SealmetricsHook().create_export(export_body("microconversions", DAY, DAY))

    events = run(SealmetricsExportTrigger(job["job_id"], poll_interval=0.2))

    assert events == [
        {
            "status": "completed",
            "message": f"Sealmetrics export {job['job_id']} completed (12000 rows).",
            "job_id": job["job_id"],
        }
    ]
    polls = [e for e in sandbox_reset.requests_log if e["path"] == f"/api/v1/exports/{job['job_id']}"]
    assert len(polls) >= 3


def test_failed_job_event_carries_the_error_message(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5, "sealmetrics_fail_jobs": 1})
    job = SealmetricsHook().create_export(export_body("microconversions", DAY, DAY))
    [event] = run(SealmetricsExportTrigger(job["job_id"], poll_interval=0.1))
    assert event["status"] == "failed"
    assert FAIL_MESSAGE in event["message"]


def test_unknown_job_is_an_error_event_with_the_api_message(sandbox_reset):
    unknown = "00000000-0000-4000-8000-000000000000"
    [event] = run(SealmetricsExportTrigger(unknown, poll_interval=0.1))
    assert event["status"] == "error"
    assert re.search(
        rf"GET /api/v1/exports/{unknown} failed \(HTTP 404; code not_found; request_id [0-9a-f-]{{36}}\): "
        "Export not found",
        event["message"],
    )


def test_a_job_id_that_is_not_a_uuid_names_the_field(sandbox_reset):
    [event] = run(SealmetricsExportTrigger("no-such-job", poll_interval=0.1))
    assert "HTTP 422; code validation_error" in event["message"]
    assert "Request validation failed: path.job_id: Input should be a valid UUID" in event["message"]


def test_trigger_serialized_with_site_id_still_loads():
    assert SealmetricsExportTrigger("job-1", site_id="shop-site").serialize()[1]["account_id"] == "shop-site"


def test_serialize_round_trip_holds_primitives_only():
    trigger = SealmetricsExportTrigger("job-1", "shop-site", "sealmetrics_other", 7)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert all(isinstance(v, (str, float, int, type(None))) for v in kwargs.values())


def test_a_job_running_past_the_timeout_ends_with_a_timeout_event(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_job_delay": 30.0})
    job = SealmetricsHook().create_export(export_body("microconversions", DAY, DAY))
    started = time.monotonic()
    [event] = run(SealmetricsExportTrigger(job["job_id"], poll_interval=0.1, timeout=0.5))
    assert 0.5 <= time.monotonic() - started < 5
    assert (event["status"], event["job_id"]) == ("timeout", job["job_id"])
    assert re.fullmatch(
        rf"Sealmetrics export {job['job_id']} still (pending|estimating|generating) after 0 s \(timeout\); "
        "raise timeout= or check the export in Sealmetrics.",
        event["message"],
    )
    assert job["job_id"] in sandbox_reset.state["sealmetrics"]["jobs"]  # cancelling is the operator's


def test_the_deadline_survives_serialization(sandbox_reset):
    """A triggerer restart rebuilds the trigger from its kwargs: the wait must not start over."""
    trigger = SealmetricsExportTrigger("job-1", "shop-site", timeout=3600)
    _, kwargs = trigger.serialize()
    time.sleep(0.05)
    rebuilt = SealmetricsExportTrigger(**kwargs)
    assert rebuilt.deadline == trigger.deadline and rebuilt.timeout == 3600
    assert SealmetricsExportTrigger("job-1").deadline is None  # the sensor's wait has no deadline
