"""Seeded fault injection: reproducible sequences and each fault kind's wire behaviour."""

from __future__ import annotations

import time

import pytest
import requests

from analytics_export_sandbox import SandboxServer

from .conftest import BRAZE_HEADERS, SEAL_HEADERS
from .test_sealmetrics import LARGE, SMALL

BRAZE = "/sessions/data_series?length=2"


def _statuses(sbx: SandboxServer, n: int) -> list[int | str]:
    out: list[int | str] = []
    for _ in range(n):
        try:
            out.append(requests.get(sbx.url + BRAZE, headers=BRAZE_HEADERS, timeout=2).status_code)
        except requests.RequestException as exc:
            out.append(type(exc).__name__)
    return out


def test_same_seed_same_sequence(sbx: SandboxServer) -> None:
    sbx.config.update({"faults": {"rate": 0.5, "seed": 7, "kinds": ["500", "502", "503", "429"]}})
    first = _statuses(sbx, 30)
    log1 = [e["fault"] for e in sbx.requests_log]
    sbx.reset()
    assert _statuses(sbx, 30) == first
    assert [e["fault"] for e in sbx.requests_log] == log1
    assert {500, 502, 503, 429} & set(first) and 200 in first
    sbx.config.update({"faults": {"seed": 8}})
    assert _statuses(sbx, 30) != first
    assert http_control_untouched(sbx)


def http_control_untouched(sbx: SandboxServer) -> bool:
    """/_sandbox/ endpoints never draw faults."""
    return all(requests.get(sbx.url + "/_sandbox/requests").status_code == 200 for _ in range(10))


def test_fault_kinds_on_the_wire(sbx: SandboxServer) -> None:
    sbx.config.update({"faults": {"rate": 1.0, "kinds": ["429"]}})
    r = requests.get(sbx.url + BRAZE, headers=BRAZE_HEADERS)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and "message" in r.json()
    sbx.config.update({"faults": {"kinds": ["503"]}})
    r = requests.get(sbx.url + "/export/events", headers={})
    assert r.status_code == 503 and r.json()["error"] == "Service Unavailable"
    sbx.config.update({"faults": {"kinds": ["drop"]}})
    with pytest.raises(requests.ConnectionError):
        requests.get(sbx.url + BRAZE, headers=BRAZE_HEADERS)
    sbx.config.update({"faults": {"kinds": ["truncate"]}})
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(sbx.url + BRAZE, headers=BRAZE_HEADERS)
    sbx.config.update({"faults": {"kinds": ["slow"], "slow_seconds": 0.5}})
    with pytest.raises(requests.Timeout):
        requests.get(sbx.url + BRAZE, headers=BRAZE_HEADERS, timeout=0.2)
    time.sleep(0.45)  # the slow request is logged once the server finishes it
    assert [e["fault"] for e in sbx.requests_log] == ["429", "503", "drop", "truncate", "slow"]


def test_sealmetrics_job_fail_and_download_cut(sbx: SandboxServer) -> None:
    sbx.config.update({"faults": {"rate": 1.0, "kinds": ["job_fail"]}})
    job = requests.post(
        sbx.url + "/api/v1/exports", params={"account_id": "demo-site"}, json=LARGE, headers=SEAL_HEADERS
    ).json()["job"]
    assert job["status"] == "pending"
    time.sleep(0.7)
    job = requests.get(
        f"{sbx.url}/api/v1/exports/{job['job_id']}", params={"account_id": "demo-site"}, headers=SEAL_HEADERS
    ).json()
    assert job["status"] == "failed" and job["error_message"]
    sbx.config.update({"faults": {"rate": 0.0}})
    small = requests.post(
        sbx.url + "/api/v1/exports", params={"account_id": "demo-site"}, json=SMALL, headers=SEAL_HEADERS
    ).json()["job"]
    sbx.config.update({"faults": {"rate": 1.0, "kinds": ["download_cut"]}})
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(small["download_url"])
    sbx.config.update({"faults": {"rate": 0.0}})
    assert len(requests.get(small["download_url"]).content) == small["file_size_bytes"]
