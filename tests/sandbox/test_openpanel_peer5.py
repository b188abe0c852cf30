"""OpenPanel paging/validation/rate limit/charts and Peer5 validation rules and CSV shape."""

from __future__ import annotations

import time

import requests

from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import openpanel_events, peer5_csv, peer5_rows

from .conftest import OPENPANEL_HEADERS, PEER5_HEADERS

HOUR = 3_600_000


def _events(http: requests.Session, sbx: SandboxServer, **params: object) -> requests.Response:
    return http.get(
        sbx.url + "/export/events", params={"projectId": "proj-app", **params}, headers=OPENPANEL_HEADERS
    )


def test_openpanel_events_pages_match_data(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_events_per_day = 200  # proj-app gets half: 100/day
    expected = list(
        openpanel_events(sbx.config, "proj-app", "2024-04-15", "2024-04-16", includes=["profile"])
    )
    assert len(expected) == 200
    got = []
    for page in (1, 2, 3):
        body = _events(
            http, sbx, start="2024-04-15", end="2024-04-16", page=page, limit=80, includes="profile"
        ).json()
        assert body["meta"]["totalCount"] == 200 and body["meta"]["pages"] == 3
        assert body["meta"]["current"] == page and body["meta"]["count"] == len(body["data"])
        got.extend(body["data"])
    assert got == expected
    assert _events(http, sbx, start="2024-04-15", end="2024-04-16", page=9, limit=80).json()["data"] == []
    created = [e["createdAt"] for e in got]
    assert created == sorted(created) and created[0].endswith("Z") and len(created[0]) == 24
    # event filter: repeated, comma-separated and JSON-array forms agree
    forms = [
        {"event": ["purchase", "sign_up"]},
        {"event": "purchase,sign_up"},
        {"event": '["purchase","sign_up"]'},
    ]
    totals = {
        _events(http, sbx, start="2024-04-15", end="2024-04-16", **f).json()["meta"]["totalCount"]
        for f in forms
    }
    exp = len(
        list(
            openpanel_events(
                sbx.config, "proj-app", "2024-04-15", "2024-04-16", events=["purchase", "sign_up"]
            )
        )
    )
    assert totals == {exp}


def test_openpanel_validation_and_projects(sbx: SandboxServer, http: requests.Session) -> None:
    for params in (
        {"start": "2024/04/15"},
        {"limit": 1001},
        {"limit": 0},
        {"page": 0},
        {"includes": "bogus"},
        {"start": "2024-04-16", "end": "2024-04-15"},
    ):
        r = _events(http, sbx, **params)
        assert r.status_code == 400, params
        body = r.json()
        assert body["error"] == "Bad Request" and body["message"] == "Invalid query parameters"
        assert isinstance(body["details"][0]["path"], list)
    r = http.get(sbx.url + "/export/events", headers=OPENPANEL_HEADERS)
    assert r.status_code == 400 and r.json()["details"][0]["path"] == ["projectId"]
    r = http.get(
        sbx.url + "/export/events", params={"project_id": "proj-forbidden"}, headers=OPENPANEL_HEADERS
    )
    assert r.status_code == 403
    assert r.json() == {"error": "Forbidden", "message": "You do not have access to this project"}
    r = http.get(sbx.url + "/export/events", params={"projectId": "nope"}, headers=OPENPANEL_HEADERS)
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "message": "Project not found"}


def test_openpanel_rate_limit(sbx: SandboxServer, http: requests.Session) -> None:
    params = {"projectId": "proj-web", "start": "2024-04-15", "end": "2024-04-15", "limit": 1}
    for i in range(100):
        r = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)
        assert r.status_code == 200, i
        assert r.headers["X-RateLimit-Remaining"] == str(99 - i)
    r = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)
    assert r.status_code == 429
    assert r.json() == {"error": "Too Many Requests", "message": "Rate limit exceeded"}
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    assert r.headers["X-RateLimit-Limit"] == "100" and r.headers["X-RateLimit-Remaining"] == "0"
    # A short window frees slots again.
    sbx.config.openpanel_rate_limit, sbx.config.openpanel_rate_window = 3, 0.3
    sbx.reset()
    codes = [
        http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    time.sleep(0.35)
    assert http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).status_code == 200


def test_openpanel_charts(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/export/charts"
    params = {
        "projectId": "proj-web",
        "events": '[{"name":"screen_view","segment":"user"}]',
        "breakdowns": '[{"name":"device"}]',
        "interval": "day",
        "startDate": "2024-04-01",
        "endDate": "2024-04-03",
        "previous": "true",
    }
    body = http.get(url, params=params, headers=OPENPANEL_HEADERS).json()
    assert [s["names"] for s in body["series"]] == [
        ["screen_view", v] for v in ("Desktop", "Mobile", "Tablet")
    ]
    s0 = body["series"][0]
    assert s0["id"] == "screen-view-desktop" and s0["event"]["name"] == "screen_view"
    assert [p["date"] for p in s0["data"]] == [f"2024-04-0{d}T00:00:00.000Z" for d in (1, 2, 3)]
    assert s0["metrics"]["sum"] == sum(p["count"] for p in s0["data"])
    assert set(s0["data"][0]["previous"]) == {"value", "change"} and "previous" in body["metrics"]
    assert body["metrics"]["sum"] == sum(s["metrics"]["sum"] for s in body["series"])
    bad = [
        {"events": '[{"segment":"user"}]'},
        {"events": '[{"name":"x","segment":"bogus"}]'},
        {"events": '[{"name":"x","filters":[{"name":"path","operator":"like","value":["/"]}]}]'},
        {"events": '[{"name":"x","filters":[{"name":"path","operator":"is","value":"/"}]}]'},
        {"interval": "year"},
        {"range": "3d", "startDate": None, "endDate": None},
        {"previous": "maybe"},
        {"breakdowns": '[{"name":"shoe_size"}]'},
    ]
    for change in bad:
        p = {k: v for k, v in {**params, **change}.items() if v is not None}
        r = http.get(url, params=p, headers=OPENPANEL_HEADERS)
        assert r.status_code == 400, change
    r = http.get(url, params={**params, "events": '[{"segment":"user"}]'}, headers=OPENPANEL_HEADERS)
    assert r.json()["details"] == [{"path": ["events", 0, "name"], "message": "Required"}]


def _peer5(http: requests.Session, sbx: SandboxServer, body: dict, fmt: str = "json") -> requests.Response:
    return http.post(sbx.url + "/v1/export", params={"format": fmt}, json=body, headers=PEER5_HEADERS)


def test_peer5_validation(sbx: SandboxServer, http: requests.Session) -> None:
    now = 1_700_000_000_000 // HOUR * HOUR
    sbx.config.now = now / 1000
    ok = {"from": now - 2 * HOUR, "to": now, "interval": "1m", "metrics": ["http", "p2p"]}
    assert _peer5(http, sbx, ok).status_code == 200
    cases = {
        "rounded": {**ok, "from": ok["from"] + 1},
        "before": {**ok, "from": ok["to"]},
        "6 hours": {**ok, "from": now - 7 * HOUR},
        "7 days": {**ok, "from": now - 8 * 24 * HOUR, "to": now - 8 * 24 * HOUR + HOUR},
        "interval": {**ok, "interval": "2m"},
        "metric": {**ok, "metrics": ["bytes"]},
        "metrics": {**ok, "metrics": []},
        "filter": {**ok, "filters": {"device.type": ["mobile"]}},
        "strings": {**ok, "filters": {"browser.name": "Chrome"}},
        "2 dimensions": {**ok, "dimensions": ["browser.name", "os.name", "country.code"]},
        "dimension": {**ok, "dimensions": ["device.type"]},
        "required": {k: v for k, v in ok.items() if k != "from"},
    }
    for words, body in cases.items():
        r = _peer5(http, sbx, body)
        assert r.status_code == 400, words
        assert r.json()["error"] is True and words.split()[0] in r.json()["message"], (words, r.json())
    assert _peer5(http, sbx, ok, fmt="xml").status_code == 400
    # 1d/7d/14d must sit on multiples of that many days since epoch; 1d is unlimited in age.
    week = 7 * 24 * HOUR
    assert (
        _peer5(http, sbx, {**ok, "interval": "7d", "from": week * 100, "to": week * 102}).status_code == 200
    )
    assert (
        _peer5(
            http, sbx, {**ok, "interval": "7d", "from": week * 100 + 24 * HOUR, "to": week * 102}
        ).status_code
        == 400
    )
    assert _peer5(http, sbx, {**ok, "interval": "1h", "from": now - 15 * 24 * HOUR}).status_code == 400
    assert _peer5(http, sbx, {**ok, "interval": "30m", "from": now - 8 * 24 * HOUR}).status_code == 400


def test_peer5_dimensions_filters_and_csv(sbx: SandboxServer, http: requests.Session) -> None:
    now = 1_700_000_000_000 // HOUR * HOUR
    sbx.config.now = now / 1000
    body = {
        "from": now - 2 * HOUR,
        "to": now,
        "interval": "1h",
        "metrics": ["http", "sessions"],
        "dimensions": ["browser.name", "country.code"],
        "filters": {"country.code": ["US", "IL", "XX"]},
    }
    data = _peer5(http, sbx, body).json()
    assert data["error"] is False
    rows = data["data"]
    assert len(rows) == 2 * 4 * 2
    assert {r["country.code"] for r in rows} == {"US", "IL"}
    assert list(rows[0]) == ["timestamp", "browser.name", "country.code", "http", "sessions"]
    assert rows == peer5_rows(
        sbx.config, body["from"], body["to"], "1h", body["metrics"], body["filters"], body["dimensions"]
    )
    text = _peer5(http, sbx, body, fmt="csv")
    assert text.headers["Content-Type"].startswith("text/csv")
    lines = text.text.splitlines()
    assert lines[0] == '"timestamp","browser.name","country.code","http","sessions"'
    first = rows[0]
    assert (
        lines[1] == f'{first["timestamp"]},"{first["browser.name"]}","{first["country.code"]}",'
        f"{first['http']},{first['sessions']}"
    )
    assert text.text == peer5_csv(rows, ["timestamp", "browser.name", "country.code", "http", "sessions"])


def test_peer5_to_inclusive_serves_the_bucket_starting_at_to(
    sbx: SandboxServer, http: requests.Session
) -> None:
    now = 1_700_000_000_000 // HOUR * HOUR
    sbx.config.now = now / 1000
    body = {"from": now - 2 * HOUR, "to": now - HOUR, "interval": "30m", "metrics": ["http"]}
    exclusive = _peer5(http, sbx, body).json()["data"]
    sbx.config.update({"peer5_to_inclusive": True})
    inclusive = _peer5(http, sbx, body).json()["data"]
    assert [row["timestamp"] for row in exclusive] == [now - 2 * HOUR, now - 2 * HOUR + HOUR // 2]
    assert inclusive == [*exclusive, *peer5_rows(sbx.config, now - HOUR, now - HOUR // 2, "30m", ["http"])]
    csv_text = _peer5(http, sbx, body, fmt="csv").text
    assert csv_text.splitlines()[-1].startswith(f"{now - HOUR},")


def test_peer5_sparse_rows_omit_metrics(sbx: SandboxServer, http: requests.Session) -> None:
    now = 1_700_000_000_000 // HOUR * HOUR
    sbx.config.now = now / 1000
    sbx.config.update({"peer5_sparse": True})
    body = {"from": now - 2 * HOUR, "to": now, "interval": "1m", "metrics": ["http", "p2p"]}
    rows = _peer5(http, sbx, body).json()["data"]
    assert len(rows) == 120
    assert any(set(row) != {"timestamp", "http", "p2p"} for row in rows)
    assert rows == peer5_rows(sbx.config, now - 2 * HOUR, now, "1m", ["http", "p2p"])
    lines = _peer5(http, sbx, body, fmt="csv").text.splitlines()
    assert any(line.endswith(",") or ",," in line for line in lines[1:])


def test_peer5_per_minute_limit_rejects_every_request_while_crossed(
    sbx: SandboxServer, http: requests.Session
) -> None:
    now = 1_700_000_000_000 // HOUR * HOUR
    sbx.config.now = now / 1000
    sbx.config.update({"peer5_rate_limit": 2, "peer5_rate_window": 0.5})
    body = {"from": now - HOUR, "to": now, "interval": "1h", "metrics": ["http"]}
    statuses = [_peer5(http, sbx, body).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    rejected = _peer5(http, sbx, body)
    assert "Retry-After" not in rejected.headers and rejected.json()["error"] is True
    time.sleep(0.6)
    assert _peer5(http, sbx, body).status_code == 200
