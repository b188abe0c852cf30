"""Sealmetrics job lifecycle: sync/background jobs, download bytes, expiry, cap, stream, cancel."""

from __future__ import annotations

import time

import requests

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.data import sealmetrics_file_chunks, sealmetrics_row_count

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
    "site_id",
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
    "created_at",
    "error_message",
}


def _create(
    http: requests.Session, sbx: SandboxServer, body: dict, site: str = "demo-site"
) -> requests.Response:
    return http.post(sbx.url + "/api/v1/exports", params={"site_id": site}, json=body, headers=SEAL_HEADERS)


def _get(http: requests.Session, sbx: SandboxServer, job_id: str) -> requests.Response:
    return http.get(
        f"{sbx.url}/api/v1/exports/{job_id}", params={"site_id": "demo-site"}, headers=SEAL_HEADERS
    )


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
        job["actual_rows"]
        == sealmetrics_row_count(
            sbx.config, "demo-site", "sources", "2025-01-01", "2025-01-10", {"country": "ES"}
        )
        < 10_000
    )
    assert job["download_url"].startswith(sbx.url + "/api/v1/exports/download/")
    d = http.get(job["download_url"])
    assert d.status_code == 200 and d.headers["Content-Type"] == "text/csv"
    assert (
        d.headers["Content-Disposition"] == 'attachment; filename="sealmetrics_sources_20250101_20250110.csv"'
    )
    expected = b"".join(sealmetrics_file_chunks(sbx.config, {"site_id": "demo-site", **SMALL}, "csv"))
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
        params={"site_id": "demo-site"},
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
        sealmetrics_file_chunks(sbx.config, {"site_id": "demo-site", **LARGE}, "json")
    )
    listing = http.get(
        sbx.url + "/api/v1/exports", params={"site_id": "demo-site"}, headers=SEAL_HEADERS
    ).json()
    assert listing["total"] == 1 and listing["exports"][0]["job_id"] == job["job_id"]


def test_expiry_gives_410(sbx: SandboxServer, http: requests.Session) -> None:
    job = _create(http, sbx, SMALL).json()["job"]
    sbx.config.sealmetrics_link_ttl = 0.2
    time.sleep(0.25)
    assert _get(http, sbx, job["job_id"]).json()["status"] == "expired"
    r = http.get(job["download_url"])
    assert r.status_code == 410 and r.json() == {"detail": "Download link expired"}
    params = {"site_id": "demo-site"}
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
    assert r.json() == {"detail": "Concurrent export limit reached (3 running). Retry later."}
    assert int(r.headers["Retry-After"]) >= 1
    assert _create(http, sbx, SMALL).status_code == 201  # small exports are synchronous, not capped
    d = http.delete(
        f"{sbx.url}/api/v1/exports/{jobs[0]['job_id']}", params={"site_id": "demo-site"}, headers=SEAL_HEADERS
    )
    assert d.status_code == 204 and d.content == b""
    assert _get(http, sbx, jobs[0]["job_id"]).status_code == 404
    assert _create(http, sbx, LARGE).status_code == 201
    s = http.post(
        sbx.url + "/api/v1/exports/stream", params={"site_id": "demo-site"}, json=LARGE, headers=SEAL_HEADERS
    )
    assert s.status_code == 413
    assert s.json() == {
        "detail": "Export too large for streaming (15,000 rows). "
        "Use POST /exports to create a background job."
    }
    s = http.post(
        sbx.url + "/api/v1/exports/stream", params={"site_id": "demo-site"}, json=SMALL, headers=SEAL_HEADERS
    )
    assert s.status_code == 200
    assert s.content == b"".join(
        sealmetrics_file_chunks(sbx.config, {"site_id": "demo-site", **SMALL}, "csv")
    )


def test_validation_sites_and_failed_jobs(sbx: SandboxServer, http: requests.Session) -> None:
    r = _create(
        http, sbx, {**SMALL, "export_type": "bogus", "filters": {"nope": "x"}, "date_to": "2025-02-30"}
    )
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert locs == [["body", "export_type"], ["body", "date_to"], ["body", "filters", "nope"]]
    assert all({"loc", "msg", "type"} == set(d) for d in r.json()["detail"])
    r = _create(http, sbx, {**SMALL, "date_from": "2025-02-01"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "date_to"]
    r = _create(http, sbx, {**SMALL, "format": "xml"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "format"]
    assert _create(http, sbx, SMALL, site="other-site").status_code == 404
    assert _create(http, sbx, SMALL, site="shop-site").status_code == 201
    r = http.get(
        sbx.url + "/api/v1/exports", params={"site_id": "demo-site", "limit": 101}, headers=SEAL_HEADERS
    )
    assert r.status_code == 422
    sbx.config.sealmetrics_fail_jobs = 1
    job = _create(http, sbx, LARGE).json()["job"]
    time.sleep(0.7)
    job = _get(http, sbx, job["job_id"]).json()
    assert job["status"] == "failed" and job["error_message"] and job["download_url"] is None
    assert sbx.config.sealmetrics_fail_jobs == 0
