"""SealmetricsExportSensor against the sandbox: poke, fail fast, defer."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from airflow_provider_analytics_export.compat import AirflowFailException, TaskDeferred
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, export_body
from airflow_provider_analytics_export.sensors.sealmetrics import SealmetricsExportSensor
from airflow_provider_analytics_export.triggers.sealmetrics import SealmetricsExportTrigger
from analytics_export_sandbox.sealmetrics import FAIL_MESSAGE

DAY = "2025-01-10"


def create(export_type: str = "microconversions") -> str:
    return SealmetricsHook().create_export(export_body(export_type, DAY, DAY))["job_id"]


def test_poke_is_false_while_running_then_true(sandbox_reset, caplog):
    sandbox_reset.config.update({"sealmetrics_job_delay": 1.0})
    sensor = SealmetricsExportSensor(task_id="wait", job_id=create(), deferrable=False)
    assert sensor.poke({}) is False
    time.sleep(1.1)
    assert sensor.poke({}) is True


def test_failed_job_fails_at_once_with_the_api_message(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.2, "sealmetrics_fail_jobs": 1})
    sensor = SealmetricsExportSensor(task_id="wait", job_id=create(), deferrable=False)
    time.sleep(0.3)
    with pytest.raises(AirflowFailException, match=re.escape(FAIL_MESSAGE)):
        sensor.poke({})


def test_expired_job_fails_with_a_clear_message(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_link_ttl": 0.2})
    sensor = SealmetricsExportSensor(task_id="wait", job_id=create("sources"), deferrable=False)
    time.sleep(0.3)
    with pytest.raises(AirflowFailException, match="expired: its download link is no longer valid"):
        sensor.poke({})


def test_deferrable_hands_the_wait_to_the_trigger(sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.6})
    job_id = create()
    sensor = SealmetricsExportSensor(task_id="wait", job_id=job_id, deferrable=True, poke_interval=0.1)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, SealmetricsExportTrigger) and trigger.job_id == job_id

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(first_event())
    assert event["status"] == "completed"
    assert getattr(sensor, deferred.value.method_name)({}, event) is None
    with pytest.raises(AirflowFailException, match="boom"):
        sensor.execute_complete({}, {"status": "failed", "message": "boom", "job_id": job_id})
