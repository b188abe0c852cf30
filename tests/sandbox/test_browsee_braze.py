"""Browsee pagination/one-open-request rule and Braze validation/bucket alignment."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import requests

from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import braze_sessions, browsee_sessions

from .conftest import BRAZE_HEADERS, BROWSEE_AUTH

DAY0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def test_browsee_pagination_matches_data(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/api/v1/export/sessions"
    window = {"start": DAY0 + 3600, "end": DAY0 + 86_400 + 7200}
    expected = list(browsee_sessions(sbx.config, window["start"], window["end"]))
    got, offset = [], 0
    while True:
        body = http.post(url, json={**BROWSEE_AUTH, **window, "from": offset, "limit": 100}).json()
        assert body["status"] == "success"
        exports = body["exports"]
        assert exports["total"] == len(expected)
        assert exports["to"] == offset + len(exports["data"])
        got.extend(exports["data"])
        offset = exports["to"]
        if not exports["data"]:
            break
    assert got == expected
    assert len({s["sessionId"] for s in got}) == len(got)
    ts = [s["timestamp"] for s in got]
    assert ts == sorted(ts) and window["start"] * 1000 <= ts[0] and ts[-1] < window["end"] * 1000


def test_browsee_select_segment_and_validation(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/api/v1/export/sessions"
    base = {**BROWSEE_AUTH, "start": DAY0, "end": DAY0 + 86_400}
    r = http.post(url, json={**base, "limit": 5, "options": {"select": ["userId", "urls"]}}).json()
    assert all(set(s) == {"sessionId", "userId", "urls"} for s in r["exports"]["data"])
    seg = http.post(url, json={**base, "segmentId": "seg-mobile", "limit": 100}).json()["exports"]
    assert 0 < seg["total"] < 480 and all(s["isMobile"] for s in seg["data"])
    assert seg["total"] == len(list(browsee_sessions(sbx.config, DAY0, DAY0 + 86_400, "seg-mobile")))
    for bad in (
        {"limit": 101},
        {"limit": 0},
        {"from": -1},
        {"start": "yesterday"},
        {"segmentId": "seg-nope"},
        {"options": {"select": ["userId", "bogus"]}},
    ):
        r = http.post(url, json={**base, **bad})
        assert r.status_code == 400, bad
        assert r.json()["status"] == "failure" and r.json()["message"]["error"]
    r = http.post(url, json={**base, "options": {"select": ["bogus"]}})
    assert "bogus" in r.json()["message"]["error"]


def test_browsee_one_open_request(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/api/v1/export/sessions"
    body = {**BROWSEE_AUTH, "start": DAY0, "end": DAY0 + 86_400, "limit": 1}
    for _ in range(15):  # strictly sequential requests never trip the limit
        assert http.post(url, json=body).status_code == 200
    sbx.config.latency_ms["browsee"] = 300
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(requests.post(url, json=body).status_code))
    first.start()
    threading.Event().wait(0.1)
    second = requests.post(url, json=body)
    first.join()
    assert results == [200]
    assert second.status_code == 429
    assert second.json() == {
        "status": "failure",
        "message": {"error": "Only one open request allowed. Wait for the previous response."},
    }
    log = [e for e in sbx.requests_log if e["api"] == "browsee"]
    assert [e["overlap"] for e in log][-2:] == [True, False]
    ok = sorted((e for e in log if e["status"] == 200), key=lambda e: e["started"])
    assert all(a["ended"] <= b["started"] for a, b in zip(ok, ok[1:], strict=False))


def test_braze_validation(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/sessions/data_series"
    for params in (
        {},
        {"length": 0},
        {"length": 101},
        {"length": "x"},
        {"length": 3, "unit": "week"},
        {"length": 3, "ending_at": "not-a-date"},
    ):
        r = http.get(url, params=params, headers=BRAZE_HEADERS)
        assert r.status_code == 400, params
        assert isinstance(r.json()["message"], str)


def test_braze_bucket_alignment(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/sessions/data_series"
    r = http.get(
        url,
        params={"length": 3, "unit": "hour", "ending_at": "2024-03-10T05:30:00+02:00"},
        headers=BRAZE_HEADERS,
    ).json()
    assert r["message"] == "success"
    assert [p["time"] for p in r["data"]] == [
        "2024-03-10T01:00:00Z",
        "2024-03-10T02:00:00Z",
        "2024-03-10T03:00:00Z",
    ]
    start = datetime(2024, 3, 10, 1, tzinfo=timezone.utc)
    assert [p["sessions"] for p in r["data"]] == [
        braze_sessions(sbx.config, "hour", start + timedelta(hours=k), None, None) for k in range(3)
    ]
    # The docs' example form: "-5:00" offset; 23:59:59-05:00 is 04:59:59Z the next day.
    r = http.get(
        url,
        params={"length": 2, "unit": "day", "ending_at": "2018-06-28T23:59:59-5:00"},
        headers=BRAZE_HEADERS,
    ).json()
    assert [p["time"] for p in r["data"]] == ["2018-06-28", "2018-06-29"]
    hours = [
        braze_sessions(sbx.config, "hour", datetime(2018, 6, 29, h, tzinfo=timezone.utc), None, None)
        for h in range(24)
    ]
    assert r["data"][1]["sessions"] == sum(hours)
    z = http.get(url, params={"length": 1, "ending_at": "2018-06-29T00:00:00Z"}, headers=BRAZE_HEADERS).json()
    assert z["data"] == r["data"][1:]
