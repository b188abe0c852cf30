"""SealmetricsExportTrigger run with asyncio against the sandbox."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time

import aiohttp

from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, export_body
from airflow_provider_analytics_export.transport.loop_sessions import loop_session
from airflow_provider_analytics_export.triggers.sealmetrics import SealmetricsExportTrigger
from analytics_export_sandbox.sealmetrics import FAIL_MESSAGE
from tests.scripted_server import Reply

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


def test_triggers_on_one_loop_share_one_session_closed_with_the_loop():
    async def twice() -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        return await loop_session(), await loop_session()

    first, again = asyncio.run(twice())
    assert first is again
    assert first.closed  # asyncio.run finalised the loop: no "Unclosed client session"
    later, _ = asyncio.run(twice())
    assert later is not first


def test_triggers_of_different_connections_share_the_session_safely(scripted, monkeypatch):
    """Each request carries its own connection's key; a cookie one API sets is never sent on."""
    for name, key in (("a", "sm_key_a"), ("b", "sm_key_b")):
        conn = {
            "conn_type": "sealmetrics",
            "host": scripted.url.replace("127.0.0.1", "localhost"),  # aiohttp keeps no cookies for IPs
            "password": key,
            "extra": {"account_id": name},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_SM_{name.upper()}", json.dumps(conn))
    running = {"status": "pending", "job_id": "j", "progress_percent": 0}
    done = {"status": "completed", "job_id": "j", "actual_rows": 1}
    scripted.queue(
        Reply(200, running, {"Set-Cookie": "session=from-a; Path=/"}),
        Reply(200, running),
        Reply(200, done),
        Reply(200, done),
    )
    triggers = [SealmetricsExportTrigger(f"job-{name}", None, f"sm_{name}", 0.05) for name in ("a", "b")]

    async def both() -> list[list[dict]]:
        async def events(trigger: SealmetricsExportTrigger) -> list[dict]:
            return [event.payload async for event in trigger.run()]

        return await asyncio.gather(*(events(trigger) for trigger in triggers))

    assert [[event["status"] for event in events] for events in asyncio.run(both())] == [["completed"]] * 2
    assert len(scripted.requests) == 4
    for request in scripted.requests:
        account = request["path"].split("account_id=")[1]
        assert request["path"].startswith(f"/api/v1/exports/job-{account}?")
        assert request["headers"]["X-API-Key"] == f"sm_key_{account}"
        assert "Cookie" not in request["headers"]
