"""Sealmetrics operators against the sandbox (and a scripted server for the 413 fallback)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_analytics_export.exceptions import (
    SealmetricsExportExpiredError,
    SealmetricsExportTimeoutError,
    TransientApiError,
)
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook
from airflow_provider_analytics_export.operators.sealmetrics import (
    XCOM_JOB_KEY,
    SealmetricsCreateExportOperator,
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.sealmetrics import sealmetrics_file_chunks
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc
START = dt.datetime(2025, 1, 10, tzinfo=UTC)


class StateStore:
    """Stand-in for Airflow's task_state_store (the execution API is not reachable in unit tests)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


class TaskInstance:
    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(days: int = 1, store: StateStore | None = None) -> dict[str, Any]:
    return {
        "data_interval_start": START,
        "data_interval_end": START + dt.timedelta(days=days),
        "ti": TaskInstance(),
        "task_state_store": store or StateStore(),
    }


def expected(sandbox: SandboxServer, export_type: str, last: str = "2025-01-10") -> bytes:
    params = {
        "account_id": "demo-site",
        "export_type": export_type,
        "date_from": "2025-01-10",
        "date_to": last,
    }
    return b"".join(sealmetrics_file_chunks(sandbox.config, {**params, "filters": {}}, "csv"))


def calls(sandbox: SandboxServer, method: str, path: str) -> int:
    return sum(1 for e in sandbox.requests_log if e["method"] == method and e["path"] == path)


def one_task(
    tmp_path: Path, export_type: str = "microconversions", **kwargs: Any
) -> SealmetricsExportOperator:
    return SealmetricsExportOperator(
        task_id="export",
        export_type=export_type,
        destination=(tmp_path / f"{export_type}.csv").as_uri(),
        **{"poll_interval": 0.1, "deferrable": False, **kwargs},
    )


def test_bad_export_type_fails_at_parse_time_naming_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="export_type='visits' is not supported; use one of: pages, sources"):
        SealmetricsCreateExportOperator(task_id="c", export_type="visits")
    with pytest.raises(ValueError, match="output_format=.parquet. is not supported; use one of csv, json"):
        one_task(tmp_path, "pages", output_format="parquet")
    with pytest.raises(ValueError, match=r"filters\[.country.\] is 3 characters long; [^;]*exactly 2"):
        one_task(tmp_path, "pages", filters={"country": "ESP"})
    one_task(tmp_path, "pages", filters={"country": "{{ params.country }}"})  # templated: checked at run time


def test_create_then_download_uses_the_data_interval_days(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.2})
    ctx = context(days=3)
    job_id = SealmetricsCreateExportOperator(task_id="c", export_type="microconversions").execute(ctx)
    pushed = ctx["ti"].xcom[XCOM_JOB_KEY]
    assert pushed["job_id"] == job_id
    assert (pushed["date_from"], pushed["date_to"]) == ("2025-01-10", "2025-01-12")  # last day inside
    assert "download_url" not in pushed
    time.sleep(0.3)
    dest = (tmp_path / "m.csv").as_uri()
    result = SealmetricsDownloadExportOperator(task_id="d", job_id=job_id, destination=dest).execute(ctx)
    assert result == {**result, "rows": 36000, "format": "csv", "job_id": job_id}
    assert (tmp_path / "m.csv").read_bytes() == expected(sandbox_reset, "microconversions", "2025-01-12")


def test_small_export_is_streamed_without_a_job(sandbox_reset, tmp_path):
    result = one_task(tmp_path, "sources").execute(context())
    assert (tmp_path / "sources.csv").read_bytes() == expected(sandbox_reset, "sources")
    assert result["method"] == "stream" and result["rows"] == 40 and result["job_id"] is None
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 0


def test_large_export_waits_for_the_job_and_downloads(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5})
    store = StateStore()
    result = one_task(tmp_path).execute(context(store=store))
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")
    assert result["method"] == "job" and result["rows"] == 12000
    assert store.values["sealmetrics_job_id"] == result["job_id"]


def test_deferrable_export_defers_then_downloads(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5})
    op = one_task(tmp_path, deferrable=True)
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)

    async def event() -> dict:
        async for item in deferred.value.trigger.run():
            return item.payload
        raise AssertionError

    payload = asyncio.run(event())
    result = getattr(op, deferred.value.method_name)(ctx, payload, **deferred.value.kwargs)
    assert result["rows"] == 12000
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")


def unreachable_after_create(sandbox: SandboxServer) -> Callable[[], None]:
    """Every request after the first create answers 503 (the try dies while waiting); returns undo."""
    sandbox.config.update({"faults": {"rate": 0.0, "kinds": ["503"]}})
    module = sandbox.modules["sealmetrics"]
    original = module.handle

    def handle(sbx: SandboxServer, req: Any) -> Any:
        response = original(sbx, req)
        if req.method == "POST" and req.path == "/api/v1/exports":
            sbx.config.faults.rate = 1.0
        return response

    module.handle = handle

    def undo() -> None:
        module.handle = original
        sandbox.config.update({"faults": {"rate": 0.0}})

    return undo


def test_retry_after_a_crash_reconnects_instead_of_creating_a_second_job(
    sandbox_reset, monkeypatch, tmp_path
):
    sandbox_reset.config.update({"sealmetrics_job_delay": 1.5})
    conn = {"conn_type": "sealmetrics", "host": sandbox_reset.url, "password": "sm_sbx_api_key_c4d2"}
    conn["extra"] = {"account_id": "demo-site", "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_ONCE", json.dumps(conn))
    store = StateStore()
    undo = unreachable_after_create(sandbox_reset)
    try:
        with pytest.raises(TransientApiError, match="HTTP 503"):  # first try dies while waiting
            one_task(tmp_path, sealmetrics_conn_id="sealmetrics_once").execute(context(store=store))
    finally:
        undo()
    first_job = store.values["sealmetrics_job_id"]
    assert first_job in sandbox_reset.state["sealmetrics"]["jobs"]  # dying is not cancelling

    result = one_task(tmp_path, sealmetrics_conn_id="sealmetrics_once").execute(context(store=store))

    assert result["job_id"] == first_job
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 1
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")


def test_timeout_cancels_the_job_instead_of_leaving_it_running(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 5.0})
    store = StateStore()
    with pytest.raises(
        SealmetricsExportTimeoutError, match=r"still \w+ after 0 s \(timeout\).*was cancelled"
    ):
        one_task(tmp_path, timeout=0.2).execute(context(store=store))
    job_id = store.values["sealmetrics_job_id"]
    assert calls(sandbox_reset, "DELETE", f"/api/v1/exports/{job_id}") == 1
    assert sandbox_reset.state["sealmetrics"]["jobs"] == {}
    assert not (tmp_path / "microconversions.csv").exists()


def test_deferred_timeout_cancels_the_job_and_fails_clearly(sandbox_reset, tmp_path):
    """Airflow's own deferral timeout would fail the task without resuming it: the trigger times out first."""
    sandbox_reset.config.update({"sealmetrics_job_delay": 30.0})
    op = one_task(tmp_path, deferrable=True, timeout=0.3)
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() > op.timeout

    async def event() -> dict:
        async for item in deferred.value.trigger.run():
            return item.payload
        raise AssertionError

    payload = asyncio.run(event())
    assert payload["status"] == "timeout"
    with pytest.raises(SealmetricsExportTimeoutError, match="was cancelled"):
        getattr(op, deferred.value.method_name)(ctx, payload, **deferred.value.kwargs)
    assert calls(sandbox_reset, "DELETE", f"/api/v1/exports/{payload['job_id']}") == 1
    assert sandbox_reset.state["sealmetrics"]["jobs"] == {}
    assert not (tmp_path / "microconversions.csv").exists()


def test_on_kill_cancels_the_running_job(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 5.0})
    op = one_task(tmp_path)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while op.job_id is None and time.monotonic() < deadline:
        time.sleep(0.05)
    op.on_kill()
    worker.join(10)
    assert calls(sandbox_reset, "DELETE", f"/api/v1/exports/{op.job_id}") == 1
    assert errors and "Export not found" in str(errors[0])
    assert not (tmp_path / "microconversions.csv").exists()


def test_expired_link_gets_one_fresh_job_then_fails_clearly(sandbox_reset, tmp_path):
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.2, "sealmetrics_link_ttl": 1.0})
    hook = SealmetricsHook()
    stale = hook.create_export(
        {
            "export_type": "microconversions",
            "format": "csv",
            "date_from": "2025-01-10",
            "date_to": "2025-01-10",
        }
    )
    time.sleep(1.3)
    event = {"status": "expired", "message": "expired", "job_id": stale["job_id"]}

    result = one_task(tmp_path).execute_complete(context(), event)

    assert result["job_id"] != stale["job_id"]
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 2
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")
    with pytest.raises(SealmetricsExportExpiredError, match="expired too before it could be downloaded"):
        one_task(tmp_path).execute_complete(context(), event, refreshed=True)


def test_413_on_stream_falls_back_to_a_job(scripted: ScriptedServer, monkeypatch, tmp_path):
    conn = {
        "conn_type": "sealmetrics",
        "host": scripted.url,
        "password": "sm_k",
        "extra": {"account_id": "s"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_SCRIPTED", json.dumps(conn))
    file = b"date,path\n2025-01-10,/a\n"
    job = {"job_id": "j1", "status": "completed", "format": "csv", "actual_rows": 1}
    job["download_url"] = f"{scripted.url}/api/v1/exports/download/tok"
    scripted.queue(
        Reply(200, {"estimated_rows": 9000, "will_use_background_job": False}),
        Reply(
            413,
            {
                "error": {"code": "payload_too_large", "message": "Export too large for streaming."},
                "request_id": "r1",
            },
        ),
        Reply(200, {"exports": [], "total": 0}),  # what exists before the create
        Reply(201, {"job": job, "message": "Export completed. Ready for download."}),
        Reply(200, job),  # wait: completed, with the link the download uses
        Reply(200, file, {"Content-Type": "text/csv"}),
    )
    result = one_task(tmp_path, "pages", sealmetrics_conn_id="sealmetrics_scripted").execute(context())
    assert [r["path"].split("?")[0] for r in scripted.requests] == [
        "/api/v1/exports/estimate",
        "/api/v1/exports/stream",
        "/api/v1/exports",
        "/api/v1/exports",
        "/api/v1/exports/j1",
        "/api/v1/exports/download/tok",
    ]
    assert result["method"] == "job" and result["rows"] == 1
    assert (tmp_path / "pages.csv").read_bytes() == file


# -- account_id, local days, retries --------------------------------------------------------
def tz_conn(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, zone: str) -> str:
    conn = {
        "conn_type": "sealmetrics",
        "host": sandbox.url,
        "password": "sm_sbx_api_key_c4d2",
        "extra": {"account_id": "demo-site", "timezone": zone},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_ZONED", json.dumps(conn))
    return "sealmetrics_zoned"


def test_site_id_argument_is_a_deprecated_alias(sandbox_reset, tmp_path):
    with pytest.warns(DeprecationWarning, match="site_id is deprecated, use account_id"):
        op = one_task(tmp_path, "sources", site_id="demo-site")
    assert op.account_id == "demo-site"
    op.execute(context())
    assert all("account_id=demo-site" in e["query"] for e in sandbox_reset.requests_log)
    with (
        pytest.raises(ValueError, match="account_id='a' and site_id='b' differ"),
        pytest.warns(DeprecationWarning),
    ):
        SealmetricsCreateExportOperator(task_id="c", export_type="pages", account_id="a", site_id="b")


@pytest.mark.parametrize(
    ("zone", "start", "end", "message"),
    [
        ("UTC", "2025-01-10T00:00:00+00:00", "2025-01-10T01:00:00+00:00", "end=2025-01-10T01:00:00+00:00"),
        ("Europe/Madrid", "2025-01-10T00:00:00+00:00", "2025-01-11T00:00:00+00:00", "start=2025-01-10T01:00"),
        ("UTC", "2025-01-09T23:00:00+00:00", "2025-01-10T23:00:00+00:00", "start=2025-01-09T23:00"),
    ],
    ids=["hourly", "utc-day-in-madrid-account", "madrid-day-in-utc-account"],
)
def test_window_that_is_not_whole_local_days_fails_before_any_request(
    sandbox_reset, monkeypatch, tmp_path, zone, start, end, message
):
    conn_id = tz_conn(monkeypatch, sandbox_reset, zone)
    op = one_task(tmp_path, "sources", start=start, end=end, sealmetrics_conn_id=conn_id)
    with pytest.raises(
        ValueError, match=re.escape(f"whole days in the account's time zone {zone}: window {message}")
    ):
        op.execute(context())
    create = SealmetricsCreateExportOperator(task_id="c", export_type="pages", sealmetrics_conn_id=conn_id)
    ctx = {**context(), "data_interval_start": dt.datetime.fromisoformat(start)}
    ctx["data_interval_end"] = dt.datetime.fromisoformat(end)
    with pytest.raises(ValueError, match="is not midnight there"):
        create.execute(ctx)
    assert sandbox_reset.requests_log == []


def test_daily_runs_in_the_account_zone_tile_local_days(sandbox_reset, monkeypatch, tmp_path):
    """Madrid midnights (23:00 UTC, 22:00 UTC in summer; 23-hour DST day included) map to one day each."""
    from zoneinfo import ZoneInfo

    madrid = ZoneInfo("Europe/Madrid")
    conn_id = tz_conn(monkeypatch, sandbox_reset, "Europe/Madrid")
    days = [dt.date(2025, 3, 29) + dt.timedelta(days=n) for n in range(3)]  # DST starts 30 March
    for index, day in enumerate(days):
        start = dt.datetime.combine(day, dt.time(), madrid)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), madrid)
        op = SealmetricsExportOperator(
            task_id=f"e{index}",
            export_type="sources",
            destination=(tmp_path / f"{day}.csv").as_uri(),
            sealmetrics_conn_id=conn_id,
            deferrable=False,
        )
        result = op.execute({**context(), "data_interval_start": start, "data_interval_end": end})
        assert (result["date_from"], result["date_to"]) == (day.isoformat(), day.isoformat())
        params = {"account_id": "demo-site", "export_type": "sources", "filters": {}}
        params.update(date_from=day.isoformat(), date_to=day.isoformat())
        assert (tmp_path / f"{day}.csv").read_bytes() == b"".join(
            sealmetrics_file_chunks(sandbox_reset.config, params, "csv")
        )


class RetryTaskInstance(TaskInstance):
    try_number = 2


def test_retry_without_a_stored_job_id_adopts_the_earlier_tries_job(sandbox_reset, tmp_path):
    """The worker died between the create and storing its id: the retry finds the job, not a second one."""
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.3})
    run_start = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    earlier = SealmetricsHook().create_export(
        {
            "export_type": "microconversions",
            "format": "csv",
            "date_from": "2025-01-10",
            "date_to": "2025-01-10",
        }
    )
    ctx = {**context(), "ti": RetryTaskInstance(), "dag_run": type("Run", (), {"start_date": run_start})()}
    result = one_task(tmp_path).execute(ctx)
    assert result["job_id"] == earlier["job_id"]
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 1
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")


def test_create_operator_retry_adopts_the_earlier_tries_job(sandbox_reset):
    run_start = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    run = type("Run", (), {"start_date": run_start})()
    first = SealmetricsCreateExportOperator(task_id="c", export_type="microconversions").execute(context())
    retry = {**context(), "ti": RetryTaskInstance(), "dag_run": run}
    assert (
        SealmetricsCreateExportOperator(task_id="c", export_type="microconversions").execute(retry) == first
    )
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 1
    first_try = {**context(), "dag_run": run}  # try 1 never adopts: a new run's first try creates
    assert (
        SealmetricsCreateExportOperator(task_id="c", export_type="microconversions").execute(first_try)
        != first
    )


def test_without_a_task_state_store_a_retry_still_adopts_its_job(sandbox_reset, tmp_path):
    """Airflow before 3.3 has no task state store: the run's own job is found by listing, not made again."""
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.3})
    run = type("Run", (), {"start_date": dt.datetime.now(UTC) - dt.timedelta(minutes=1)})()
    no_store = {key: value for key, value in context().items() if key != "task_state_store"}
    first = one_task(tmp_path).execute({**no_store, "dag_run": run})
    retry = one_task(tmp_path, durable=False).execute({**no_store, "ti": RetryTaskInstance(), "dag_run": run})
    assert retry["job_id"] == first["job_id"] and retry["method"] == "job"
    assert calls(sandbox_reset, "POST", "/api/v1/exports") == 1
    assert (tmp_path / "microconversions.csv").read_bytes() == expected(sandbox_reset, "microconversions")


@pytest.mark.parametrize(
    ("shape", "export_type", "minimum"),
    [("stream", "sources", 1), ("job", "microconversions", 3)],  # stream POST | create, done status, file
)
def test_requests_per_shape_stay_within_two_of_the_minimum(
    sandbox_reset, tmp_path, shape, export_type, minimum
):
    """Beyond the minimum: the estimate (stream or job?) and, for a job, the listing that tells our
    job from an identical earlier one (exactly one job per export). Status reads that found the
    job still running are the wait itself (their number is poll_interval's), not overhead."""
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5})
    running: list[str] = []

    def observe(api: str, req: Any, resp: Any) -> None:
        status_read = api == "sealmetrics" and req.method == "GET" and req.path.count("/") == 4
        if status_read and json.loads(resp.body).get("status") in ("pending", "estimating", "generating"):
            running.append(req.path)

    sandbox_reset.observers.append(observe)
    try:
        assert one_task(tmp_path, export_type).execute(context())["method"] == shape
    finally:
        sandbox_reset.observers.remove(observe)
    deadline = time.monotonic() + 5  # a file answer is logged once its last byte left
    while not any(e["path"].endswith(("/stream", "/<token>")) for e in sandbox_reset.requests_log):
        assert time.monotonic() < deadline, "the file request was never logged"
        time.sleep(0.05)
    log = [e for e in sandbox_reset.requests_log if e["api"] == "sealmetrics"]
    needed = len(log) - len(running)
    assert needed <= minimum + 2, [(e["method"], e["path"]) for e in log]
