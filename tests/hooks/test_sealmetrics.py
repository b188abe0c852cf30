"""SealmetricsHook over real sockets: the sandbox for API behaviour, a scripted server for odd replies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airflow_provider_analytics_export.exceptions import (
    AnalyticsExportError,
    ExportIntegrityError,
    InvalidRequestError,
    MalformedResponseError,
)
from airflow_provider_analytics_export.hooks.base import TransientApiError
from airflow_provider_analytics_export.hooks.sealmetrics import (
    EXPORT_TYPES,
    RecordCounter,
    SealmetricsExportExpiredError,
    SealmetricsHook,
    export_body,
)
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.data import sealmetrics_file_chunks
from tests.scripted_server import Reply, ScriptedServer

SITE = "demo-site"
DAY = "2025-01-10"


def expected_file(sandbox: SandboxServer, body: dict, fmt: str = "csv") -> bytes:
    params = {"site_id": SITE, **{k: body[k] for k in ("export_type", "date_from", "date_to", "filters")}}
    return b"".join(sealmetrics_file_chunks(sandbox.config, params, fmt))


def wait_done(hook: SealmetricsHook, job_id: str) -> dict:
    for _ in range(100):
        job = hook.get_export(job_id)
        if job["status"] not in ("pending", "estimating", "generating"):
            return job
        time.sleep(0.1)
    raise AssertionError("job never finished")


@pytest.fixture
def hook(sandbox_reset: SandboxServer) -> SealmetricsHook:
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5})
    return SealmetricsHook()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"export_type": "visits"}, "export_type='visits' is not supported; use one of: pages, sources"),
        ({"export_format": "xlsx"}, "export_format='xlsx' is not supported; use one of: csv, json"),
        ({"filters": {"city": "Madrid"}}, "filters key='city' is not supported; use one of: utm_source"),
        ({"filters": {"country": 34}}, "filters['country']=34 must be a string"),
        ({"date_from": "2025-02-01"}, "date_from=2025-02-01 is after date_to=2025-01-10"),
    ],
)
def test_bad_arguments_fail_before_any_request(hook, sandbox_reset, kwargs, message):
    args = {"export_type": "pages", "date_from": DAY, "date_to": DAY, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        hook.create_export(export_body(**args))
    assert sandbox_reset.requests_log == []


def test_background_job_lifecycle_downloads_the_exact_file(hook, sandbox_reset, tmp_path: Path):
    body = export_body("microconversions", DAY, DAY)  # 12,000 rows: a background job
    job = hook.create_export(body)
    assert job["status"] == "pending"
    done = wait_done(hook, job["job_id"])
    assert done["status"] == "completed"

    summary = hook.download_export(done, tmp_path.as_uri() + "/micro.csv")

    assert (tmp_path / "micro.csv").read_bytes() == expected_file(sandbox_reset, body)
    assert summary == {
        "uri": (tmp_path / "micro.csv").as_uri(),
        "rows": 12000,
        "bytes": len(expected_file(sandbox_reset, body)),
        "format": "csv",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["micro.csv"]
    download = [e for e in sandbox_reset.requests_log if "download" in e["path"]]
    assert [e["path"] for e in download] == ["/api/v1/exports/download/<token>"]


def test_estimate_stream_list_and_cancel(hook, sandbox_reset, tmp_path: Path):
    body = export_body("sources", DAY, "2025-01-12", "json", {"utm_medium": "cpc"})
    estimate = hook.estimate_export(body)
    assert estimate["will_use_background_job"] is False

    summary = hook.stream_export(body, tmp_path.as_uri() + "/sources.json")
    content = (tmp_path / "sources.json").read_bytes()
    assert content == expected_file(sandbox_reset, body, "json")
    assert summary["rows"] == len(json.loads(content)) == estimate["estimated_rows"]

    too_big = export_body("microconversions", DAY, DAY)
    with pytest.raises(InvalidRequestError, match=r"HTTP 413\): Export too large for streaming") as info:
        hook.stream_export(too_big, tmp_path.as_uri() + "/big.csv")
    assert info.value.status == 413
    assert not (tmp_path / "big.csv").exists()

    job = hook.create_export(too_big)
    assert [j["job_id"] for j in hook.list_exports()] == [job["job_id"]]
    hook.cancel_export(job["job_id"])
    assert list(hook.list_exports()) == []


def test_list_exports_follows_every_page(hook, sandbox_reset):
    created = [hook.create_export(export_body("devices", DAY, DAY))["job_id"] for _ in range(105)]
    listed = [job["job_id"] for job in hook.list_exports()]
    assert sorted(listed) == sorted(created)
    pages = [e for e in sandbox_reset.requests_log if e["method"] == "GET" and e["path"] == "/api/v1/exports"]
    assert len(pages) == 2


def test_failed_job_error_message_surfaces(hook, sandbox_reset, tmp_path: Path):
    sandbox_reset.config.update({"sealmetrics_fail_jobs": 1})
    job = wait_done(hook, hook.create_export(export_body("microconversions", DAY, DAY))["job_id"])
    with pytest.raises(AnalyticsExportError, match="failed: Export generation failed: analytics query timed"):
        hook.download_export(job, tmp_path.as_uri() + "/x.csv")


def test_expired_link_is_a_clear_error_and_leaves_no_file(hook, sandbox_reset, tmp_path: Path):
    sandbox_reset.config.update({"sealmetrics_link_ttl": 0.5})
    job = hook.create_export(export_body("sources", DAY, DAY))  # small: completed at once
    assert job["status"] == "completed"
    time.sleep(0.7)
    with pytest.raises(SealmetricsExportExpiredError, match="HTTP 410|Download link expired"):
        hook.download_export(job, tmp_path.as_uri() + "/s.csv")
    assert hook.get_export(job["job_id"])["status"] == "expired"
    assert list(tmp_path.iterdir()) == []


def test_concurrency_cap_429_waits_for_a_free_slot(hook, sandbox_reset):
    sandbox_reset.config.update({"sealmetrics_max_concurrent": 1, "sealmetrics_job_delay": 2.0})
    first = hook.create_export(export_body("microconversions", DAY, DAY))
    started = time.monotonic()
    second = hook.create_export(export_body("microconversions", "2025-01-11", "2025-01-11"))
    assert second["job_id"] != first["job_id"]
    assert time.monotonic() - started >= 1.0
    statuses = [e["status"] for e in sandbox_reset.requests_log if e["method"] == "POST"]
    assert statuses[0] == 201 and statuses[-1] == 201 and 429 in statuses


def test_cut_downloads_are_retried_then_fail_without_a_partial_file(sandbox_reset, tmp_path: Path):
    sandbox_reset.config.update({"faults": {"rate": 1.0, "kinds": ["download_cut"]}})
    hook = SealmetricsHook(max_attempts=2)
    job = hook.create_export(export_body("pages", DAY, DAY))
    with pytest.raises(TransientApiError, match="truncated"):
        hook.download_export(job, tmp_path.as_uri() + "/p.csv")
    assert list(tmp_path.iterdir()) == []
    assert sum("download" in e["path"] for e in sandbox_reset.requests_log) == 2


@pytest.fixture
def scripted_hook(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> SealmetricsHook:
    conn = {
        "conn_type": "sealmetrics",
        "host": scripted.url,
        "password": "sm_key",
        "extra": {"site_id": SITE},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_SCRIPTED", json.dumps(conn))
    return SealmetricsHook("sealmetrics_scripted", max_attempts=1)


def test_download_sends_no_api_key_and_never_shows_the_token(scripted_hook, scripted, tmp_path: Path):
    token = "tok_secret_abc123"
    scripted.queue(Reply(404, {"detail": "Download link not found"}))
    with pytest.raises(InvalidRequestError) as info:
        scripted_hook.download_export(
            f"{scripted.url}/api/v1/exports/download/{token}", tmp_path.as_uri() + "/f"
        )
    assert token not in str(info.value)
    assert "/api/v1/exports/download/<token>" in str(info.value)
    assert "X-API-Key" not in scripted.requests[0]["headers"]


def test_row_count_mismatch_refuses_the_file(scripted_hook, scripted, tmp_path: Path):
    url = f"{scripted.url}/api/v1/exports/download/tok"
    job = {"job_id": "j1", "status": "completed", "format": "csv", "actual_rows": 3, "download_url": url}
    scripted.queue(Reply(200, b"date,path\n2025-01-01,/a\n2025-01-01,/b\n", {"Content-Type": "text/csv"}))
    with pytest.raises(ExportIntegrityError, match="actual_rows=3 but the downloaded file holds 2 records"):
        scripted_hook.download_export(job, tmp_path.as_uri() + "/f.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("fmt", "reply", "message"),
    [
        ("csv", Reply(200, b"", {"Content-Type": "text/csv"}), "does not start with a CSV header line"),
        ("json", Reply(200, {"detail": "busy"}), "does not start with a JSON array"),
        (
            "csv",
            Reply(200, b"<html>oops</html>", {"Content-Type": "text/html"}),
            "'text/html', not 'text/csv'",
        ),
    ],
)
def test_stream_body_that_is_not_the_file_is_refused_at_once(
    scripted_hook, scripted, tmp_path, fmt, reply, message
):
    """An empty 200 or an error page is not committed as a 0-row file, and not retried."""
    scripted.queue(reply)
    body = export_body("pages", DAY, DAY, fmt)
    hook = SealmetricsHook(scripted_hook.conn_id, max_attempts=3)
    with pytest.raises(MalformedResponseError, match=message) as info:
        hook.stream_export(body, tmp_path.as_uri() + f"/f.{fmt}")
    assert "Sealmetrics POST /api/v1/exports/stream failed (HTTP 200)" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert len(scripted.requests) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://evil.example.com/api/v1/exports/download/t", "must be on the connection's host"),
        ("http://api.sealmetrics.com/api/v1/exports/download/t", "Refusing to download over 'http'"),
    ],
)
def test_download_url_safety(monkeypatch, url, message):
    conn = {"conn_type": "sealmetrics", "host": "api.sealmetrics.com", "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_SEALMETRICS_PROD", json.dumps(conn))
    with pytest.raises(AnalyticsExportError, match=message):
        SealmetricsHook("sealmetrics_prod").checked_download_url(url)


def test_record_counter_handles_quotes_and_chunk_boundaries():
    data = b'a,b\n1,"x\ny"\n2,"say ""hi""\n"\n3,z'
    counter = RecordCounter("csv")
    for i in range(0, len(data), 3):
        counter.feed(data[i : i + 3])
    assert counter.rows == 3

    doc = json.dumps([{"a": '}{\\"[', "n": [1, {"x": 2}]}, {"b": "\\"}, {}]).encode()
    counter = RecordCounter("json")
    for i in range(0, len(doc), 2):
        counter.feed(doc[i : i + 2])
    assert counter.rows == 3


def test_export_types_match_the_docs():
    assert len(EXPORT_TYPES) == 13 and "landing_pages" in EXPORT_TYPES
