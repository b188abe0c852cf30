"""Browsee pagination/one-open-request rule and Braze validation/bucket alignment."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.braze import braze_sessions
from analytics_export_sandbox.browsee import browsee_sessions

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


# -- open readings behind switches -------------------------------------------------------------


def test_browsee_end_inclusive_serves_the_sessions_of_the_end_second(
    sbx: SandboxServer, http: requests.Session
) -> None:
    url = sbx.url + "/api/v1/export/sessions"
    day = list(browsee_sessions(sbx.config, DAY0, DAY0 + 86_400))
    end = day[10]["timestamp"] // 1000  # a window ending in the second session 10 starts
    body = {**BROWSEE_AUTH, "start": DAY0, "end": end, "limit": 100}
    exclusive = http.post(url, json=body).json()["exports"]
    sbx.config.update({"browsee_end_inclusive": True})
    inclusive = http.post(url, json=body).json()["exports"]
    assert exclusive["data"] == day[:10]
    assert inclusive["data"][: exclusive["total"]] == day[:10]
    assert day[10] in inclusive["data"]
    assert inclusive["total"] == len(inclusive["data"]) > exclusive["total"]


def test_browsee_without_session_id_and_sparse_fields(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/api/v1/export/sessions"
    body = {**BROWSEE_AUTH, "start": DAY0, "end": DAY0 + 86_400, "limit": 100}
    full = http.post(url, json=body).json()["exports"]["data"]
    sbx.config.update({"browsee_session_id": False, "browsee_sparse": True})
    sparse = http.post(url, json=body).json()["exports"]["data"]
    assert not any("sessionId" in row for row in sparse)
    anonymous = [row for row in sparse if "userId" not in row]
    assert anonymous and not any({"name", "email", "tags"} & set(row) for row in anonymous)
    assert any("utm_source" not in row for row in sparse) and any("utm_source" in row for row in sparse)
    assert sparse == [
        {k: v for k, v in row.items() if k != "sessionId" and v not in (None, [])} for row in full
    ]
    assert sparse == list(browsee_sessions(sbx.config, DAY0, DAY0 + 86_400))[:100]


@pytest.mark.parametrize(
    ("time_format", "zone", "labels"),
    [
        ("z", "UTC", ["2024-03-10T01:00:00Z", "2024-03-10T02:00:00Z"]),
        ("offset", "America/New_York", ["2024-03-09T20:00:00-05:00", "2024-03-09T21:00:00-05:00"]),
        ("naive", "Asia/Tokyo", ["2024-03-10T10:00:00", "2024-03-10T11:00:00"]),
    ],
)
def test_braze_hour_time_formats(
    sbx: SandboxServer, http: requests.Session, time_format: str, zone: str, labels: list[str]
) -> None:
    sbx.config.update({"braze_time_format": time_format, "braze_timezone": zone})
    params = {"length": 2, "unit": "hour", "ending_at": "2024-03-10T02:30:00Z"}
    data = http.get(sbx.url + "/sessions/data_series", params=params, headers=BRAZE_HEADERS).json()["data"]
    assert [p["time"] for p in data] == labels
    first = datetime(2024, 3, 10, 1, tzinfo=timezone.utc)
    assert [p["sessions"] for p in data] == [
        braze_sessions(sbx.config, "hour", first + timedelta(hours=k), None, None) for k in range(2)
    ]


def test_braze_days_follow_the_company_time_zone(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.update({"braze_timezone": "America/New_York"})
    # 2024-03-10 is the DST start in New York: a 23-hour day from 05:00Z to 04:00Z the next day.
    params = {"length": 1, "unit": "day", "ending_at": "2024-03-11T03:59:59Z"}
    data = http.get(sbx.url + "/sessions/data_series", params=params, headers=BRAZE_HEADERS).json()["data"]
    first = datetime(2024, 3, 10, 5, tzinfo=timezone.utc)
    hours = [braze_sessions(sbx.config, "hour", first + timedelta(hours=h), None, None) for h in range(23)]
    assert data == [{"time": "2024-03-10", "sessions": sum(hours)}]


def test_braze_pool_answers_429_with_reset_headers_only(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.update({"braze_rate_limit": 2, "braze_rate_window": 3600.0})
    url = sbx.url + "/sessions/data_series"
    before = time.time()
    answers = [http.get(url, params={"length": 1}, headers=BRAZE_HEADERS) for _ in range(3)]
    after = time.time()
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["1", "0", "0"]
    reset = int(answers[2].headers["X-RateLimit-Reset"])
    # The end of the hour the requests fell in (bounded by times read around them: one read after
    # the assertion would fail when the requests end an hour and the check runs in the next).
    assert reset % 3600 == 0 and before < reset <= after + 3600
    assert "Retry-After" not in answers[2].headers
    assert answers[2].json()["message"] == "API rate limit exceeded"
