"""Sealmetrics job lifecycle on the current API: account_id, envelope errors, expiry, caps, stream."""

from __future__ import annotations

import json
import time

import pytest
import requests

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.sealmetrics import sealmetrics_file_chunks, sealmetrics_row_count

from .conftest import SEAL_HEADERS

SMALL = {
    "export_type": "sources",
    "format": "csv",
    "date_from": "2025-01-01",
    "date_to": "2025-01-10",
    "filters": {"country": "ES"},
}
LARGE = {"export_type": "pages", "format": "json", "date_from": "2025-01-01", "date_to": "2025-01-05"}
JOB_FIELDS = {
    "id",
    "job_id",
    "account_id",
    "export_type",
    "format",
    "date_from",
    "date_to",
    "filters",
    "status",
    "estimated_rows",
    "actual_rows",
    "file_size_bytes",
    "file_size_human",
    "progress_percent",
    "download_url",
    "download_expires_at",
    "started_at",
    "completed_at",
    "expires_at",
    "created_by",
    "created_at",
    "error_message",
}
ACCOUNT = {"account_id": "demo-site"}


def _create(
    http: requests.Session, sbx: SandboxServer, body: dict, site: str = "demo-site"
) -> requests.Response:
    return http.post(
        sbx.url + "/api/v1/exports", params={"account_id": site}, json=body, headers=SEAL_HEADERS
    )


def _get(http: requests.Session, sbx: SandboxServer, job_id: str) -> requests.Response:
    return http.get(f"{sbx.url}/api/v1/exports/{job_id}", params=ACCOUNT, headers=SEAL_HEADERS)


def test_small_export_is_completed_and_downloads_exact_bytes(
    sbx: SandboxServer, http: requests.Session
) -> None:
    r = _create(http, sbx, SMALL)
    assert r.status_code == 201
    body = r.json()
    job = body["job"]
    assert set(job) == JOB_FIELDS
    assert job["status"] == "completed" and job["progress_percent"] == 100
    assert body["estimate"]["will_use_background_job"] is False
    assert (
        job["actual_rows"] == sealmetrics_row_count(sbx.config, {"account_id": "demo-site", **SMALL}) < 10_000
    )
    assert job["download_url"].startswith(sbx.url + "/api/v1/exports/download/")
    d = http.get(job["download_url"])
    assert d.status_code == 200 and d.headers["Content-Type"] == "text/csv"
    assert d.headers["X-RateLimit-Limit"] == "480"
    assert (
        d.headers["Content-Disposition"] == 'attachment; filename="sealmetrics_sources_20250101_20250110.csv"'
    )
    expected = b"".join(sealmetrics_file_chunks(sbx.config, {"account_id": "demo-site", **SMALL}, "csv"))
    assert d.content == expected and int(d.headers["Content-Length"]) == job["file_size_bytes"] == len(
        expected
    )
    assert d.text.splitlines()[0] == "date,utm_source,entrances,page_views,conversions,revenue"
    assert len(d.text.splitlines()) == job["actual_rows"] + 1
    assert "/download/" not in str(sbx.requests_log[-1]["path"]).replace("<token>", "") or sbx.requests_log[
        -1
    ]["path"].endswith("<token>")


def test_large_export_runs_in_background(sbx: SandboxServer, http: requests.Session) -> None:
    est = http.post(
        sbx.url + "/api/v1/exports/estimate",
        params=ACCOUNT,
        json=LARGE,
        headers=SEAL_HEADERS,
    ).json()
    assert est["will_use_background_job"] is True and est["estimated_rows"] == 15_000
    job = _create(http, sbx, LARGE).json()["job"]
    assert job["status"] == "pending" and job["download_url"] is None and job["actual_rows"] is None
    seen = [job["status"]]
    progress = []
    deadline = time.monotonic() + 5
    while job["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = _get(http, sbx, job["job_id"]).json()
        seen.append(job["status"])
        if job["status"] == "generating":
            progress.append(job["progress_percent"])
    assert job["status"] == "completed"
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [
        "pending",
        "estimating",
        "generating",
        "completed",
    ]
    assert progress == sorted(progress) and progress[-1] < 100
    d = http.get(job["download_url"])
    assert d.headers["Content-Type"] == "application/json"
    rows = d.json()
    assert len(rows) == job["actual_rows"] == 15_000
    assert d.content == b"".join(
        sealmetrics_file_chunks(sbx.config, {"account_id": "demo-site", **LARGE}, "json")
    )
    listing = http.get(sbx.url + "/api/v1/exports", params=ACCOUNT, headers=SEAL_HEADERS).json()
    assert listing["total"] == 1 and listing["exports"][0]["job_id"] == job["job_id"]


def test_expired_token_is_a_404_as_the_spec_documents(sbx: SandboxServer, http: requests.Session) -> None:
    job = _create(http, sbx, SMALL).json()["job"]
    sbx.config.sealmetrics_link_ttl = 0.2
    time.sleep(0.25)
    assert _get(http, sbx, job["job_id"]).json()["status"] == "expired"
    r = http.get(job["download_url"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    params = ACCOUNT
    assert http.get(sbx.url + "/api/v1/exports", params=params, headers=SEAL_HEADERS).json()["total"] == 0
    listing = http.get(
        sbx.url + "/api/v1/exports", params={**params, "include_expired": "true"}, headers=SEAL_HEADERS
    ).json()
    assert listing["total"] == 1 and listing["exports"][0]["status"] == "expired"
    assert http.get(sbx.url + "/api/v1/exports/download/nope").status_code == 404


def test_concurrency_cap_stream_413_and_cancel(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.sealmetrics_job_delay = 5.0
    jobs = [_create(http, sbx, LARGE).json()["job"] for _ in range(3)]
    assert all(j["status"] == "pending" for j in jobs)
    r = _create(http, sbx, LARGE)
    assert r.status_code == 429
    assert r.json()["error"] == {
        "code": "quota_exceeded",
        "message": "Concurrent export limit reached (3 running). Retry later.",
        "detail": {"limit": 3, "running": 3},
    }
    assert int(r.headers["Retry-After"]) >= 1
    assert _create(http, sbx, SMALL).status_code == 201  # small exports are synchronous, not capped
    d = http.delete(f"{sbx.url}/api/v1/exports/{jobs[0]['job_id']}", params=ACCOUNT, headers=SEAL_HEADERS)
    assert d.status_code == 204 and d.content == b""
    assert _get(http, sbx, jobs[0]["job_id"]).status_code == 404
    assert _create(http, sbx, LARGE).status_code == 201
    s = http.post(sbx.url + "/api/v1/exports/stream", params=ACCOUNT, json=LARGE, headers=SEAL_HEADERS)
    assert s.status_code == 413
    assert s.json()["error"] == {
        "code": "payload_too_large",
        "message": "Export too large for streaming (15,000 rows). "
        "Use POST /exports to create a background job.",
    }
    s = http.post(sbx.url + "/api/v1/exports/stream", params=ACCOUNT, json=SMALL, headers=SEAL_HEADERS)
    assert s.status_code == 200
    assert s.content == b"".join(
        sealmetrics_file_chunks(sbx.config, {"account_id": "demo-site", **SMALL}, "csv")
    )


def test_validation_sites_and_failed_jobs(sbx: SandboxServer, http: requests.Session) -> None:
    r = _create(
        http, sbx, {**SMALL, "export_type": "bogus", "filters": {"nope": "x"}, "date_to": "2025-02-30"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error" and r.json()["request_id"]
    fields = [d["field"] for d in r.json()["error"]["detail"]]
    assert fields == ["body.export_type", "body.date_to", "body.filters.nope"]
    assert all({"field", "message", "type"} == set(d) for d in r.json()["error"]["detail"])
    r = _create(http, sbx, {**SMALL, "date_from": "2025-02-01"})
    assert r.status_code == 422 and r.json()["error"]["detail"][0]["field"] == "body.date_to"
    r = _create(http, sbx, {**SMALL, "format": "xml"})
    assert r.status_code == 422 and r.json()["error"]["detail"][0]["field"] == "body.format"
    r = _create(http, sbx, SMALL, site="other-site")
    assert r.status_code == 404 and r.json()["error"]["code"] == "account_not_found"
    assert _create(http, sbx, SMALL, site="shop-site").status_code == 201
    r = http.get(sbx.url + "/api/v1/exports", params={**ACCOUNT, "limit": 101}, headers=SEAL_HEADERS)
    assert r.status_code == 422
    sbx.config.sealmetrics_fail_jobs = 1
    job = _create(http, sbx, LARGE).json()["job"]
    time.sleep(0.7)
    job = _get(http, sbx, job["job_id"]).json()
    assert job["status"] == "failed" and job["error_message"] and job["download_url"] is None
    assert sbx.config.sealmetrics_fail_jobs == 0


def test_site_id_is_rejected_and_account_id_required(sbx: SandboxServer, http: requests.Session) -> None:
    r = http.get(sbx.url + "/api/v1/exports", params={"site_id": "demo-site"}, headers=SEAL_HEADERS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert (
        "account_id" in r.json()["error"]["message"] and r.headers["X-Request-ID"] == r.json()["request_id"]
    )
    r = http.post(sbx.url + "/api/v1/exports", json=SMALL, headers=SEAL_HEADERS)
    assert r.status_code == 422
    assert r.json()["error"]["detail"] == [
        {"field": "query.account_id", "message": "Field required", "type": "missing"}
    ]
    r = http.get(f"{sbx.url}/api/v1/exports/not-a-uuid", params=ACCOUNT, headers=SEAL_HEADERS)
    assert r.status_code == 422 and r.json()["error"]["detail"][0]["field"] == "path.job_id"


def test_lists_carry_full_job_objects(sbx: SandboxServer, http: requests.Session) -> None:
    job = _create(http, sbx, SMALL).json()["job"]
    listing = http.get(sbx.url + "/api/v1/exports", params=ACCOUNT, headers=SEAL_HEADERS).json()
    assert listing["exports"] == [_get(http, sbx, job["job_id"]).json()]
    assert set(listing["exports"][0]) == JOB_FIELDS


def test_rate_limit_headers_and_429(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.sealmetrics_rate_limit = 3
    seen = [http.get(sbx.url + "/api/v1/exports", params=ACCOUNT, headers=SEAL_HEADERS) for _ in range(4)]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in seen} == {"3"}
    assert abs(int(seen[0].headers["X-RateLimit-Reset"]) - (time.time() + 60)) <= 2
    assert seen[3].status_code == 429 and seen[3].json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(seen[3].headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("switch", "status", "code"),
    [("conflict", 409, "conflict"), ("rate_limit_exceeded", 429, "rate_limit_exceeded")],
)
def test_cap_response_switch(
    sbx: SandboxServer, http: requests.Session, switch: str, status: int, code: str
) -> None:
    sbx.config.update(
        {"sealmetrics_max_concurrent": 1, "sealmetrics_job_delay": 5.0, "sealmetrics_cap_response": switch}
    )
    assert _create(http, sbx, LARGE).status_code == 201
    r = _create(http, sbx, LARGE)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_quota_exceeded(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.update({"sealmetrics_export_quota": 1, "sealmetrics_quota_retry_after": 120})
    assert _create(http, sbx, SMALL).status_code == 201
    r = _create(http, sbx, SMALL)
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.headers["Retry-After"] == "120"


@pytest.mark.parametrize(
    ("media", "layout"), [("application/json", "json"), ("application/x-ndjson", "ndjson")]
)
def test_stream_content_types(sbx: SandboxServer, http: requests.Session, media: str, layout: str) -> None:
    sbx.config.sealmetrics_stream_json_type = media
    csv = http.post(sbx.url + "/api/v1/exports/stream", params=ACCOUNT, json=SMALL, headers=SEAL_HEADERS)
    assert (
        csv.headers["Content-Type"] == "text/csv; charset=utf-8"
        and csv.headers["Cache-Control"] == "no-store"
    )
    assert csv.headers["Content-Disposition"] == 'attachment; filename="sources_2025-01-01_2025-01-10.csv"'
    body = {**SMALL, "format": "json"}
    r = http.post(sbx.url + "/api/v1/exports/stream", params=ACCOUNT, json=body, headers=SEAL_HEADERS)
    assert r.headers["Content-Type"] == media
    assert r.content == b"".join(sealmetrics_file_chunks(sbx.config, {**ACCOUNT, **body}, layout))
    rows = r.json() if layout == "json" else [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == int(csv.text.count("\n")) - 1


def test_create_then_drop_creates_the_job_and_answers_nothing(
    sbx: SandboxServer, http: requests.Session
) -> None:
    sbx.config.update({"faults": {"rate": 1.0, "kinds": ["create_then_drop"]}})
    with pytest.raises(requests.ConnectionError):
        _create(http, sbx, SMALL)
    sbx.config.update({"faults": {"rate": 0.0}})
    listing = http.get(sbx.url + "/api/v1/exports", params=ACCOUNT, headers=SEAL_HEADERS).json()
    assert listing["total"] == 1 and listing["exports"][0]["export_type"] == "sources"


def test_filter_lengths_follow_the_spec(sbx: SandboxServer, http: requests.Session) -> None:
    """ExportFilters: country exactly 2 characters, device_type <= 50, browser/os/conversion_type
    <= 100, advanced_filters <= 1000, the rest <= 255; null is allowed (no filter)."""
    fine = {"country": "ES", "utm_source": "u" * 255, "device_type": "d" * 50, "advanced_filters": "a" * 1000}
    assert _create(http, sbx, {**SMALL, "filters": fine}).status_code == 201
    for key, value, kind in (
        ("country", "ESP", "max_length"),
        ("country", "E", "min_length"),
        ("utm_campaign", "c" * 256, "max_length"),
        ("device_type", "d" * 51, "max_length"),
        ("browser", "b" * 101, "max_length"),
        ("advanced_filters", "a" * 1001, "max_length"),
    ):
        for route in ("", "/estimate", "/stream"):
            r = http.post(
                sbx.url + "/api/v1/exports" + route,
                params=ACCOUNT,
                json={**SMALL, "filters": {key: value}},
                headers=SEAL_HEADERS,
            )
            assert r.status_code == 422, (key, route)
            [detail] = r.json()["error"]["detail"]
            assert detail["field"] == f"body.filters.{key}" and detail["type"].endswith(kind)
    nulls = _create(http, sbx, {**SMALL, "filters": {"country": None, "utm_source": None}}).json()["job"]
    plain = _create(http, sbx, {**SMALL, "filters": {}}).json()["job"]
    assert nulls["filters"] == {} and nulls["file_size_bytes"] == plain["file_size_bytes"]
    assert http.get(nulls["download_url"]).content == http.get(plain["download_url"]).content
