"""OpenPanel as its open-source server behaves, and Peer5 validation rules and CSV shape."""

from __future__ import annotations

import datetime as dt
import time

import requests

from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.openpanel import OPENPANEL_DEFAULT_FIELDS, openpanel_events, openpanel_select
from analytics_export_sandbox.peer5 import peer5_csv, peer5_rows

from .conftest import OPENPANEL_HEADERS, PEER5_HEADERS

HOUR = 3_600_000
UTC = dt.timezone.utc
READ_HEADERS = {
    "openpanel-client-id": CREDENTIALS["openpanel"]["read_client_id"],
    "openpanel-client-secret": CREDENTIALS["openpanel"]["read_client_secret"],
}


def _events(http: requests.Session, sbx: SandboxServer, **params: object) -> requests.Response:
    return http.get(
        sbx.url + "/export/events", params={"projectId": "proj-app", **params}, headers=OPENPANEL_HEADERS
    )


def _chart(http: requests.Session, sbx: SandboxServer, **params: object) -> dict:
    base = {"projectId": "proj-web", "events": '[{"name":"screen_view"}]', "interval": "day"}
    r = http.get(sbx.url + "/export/charts", params={**base, **params}, headers=OPENPANEL_HEADERS)
    assert r.status_code == 200, r.text
    return r.json()


def test_openpanel_events_newest_first_default_columns(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_events_per_day = 200  # proj-app gets half: 100/day
    expected = list(openpanel_events(sbx.config, "proj-app", "2024-04-15", "2024-04-16"))
    assert len(expected) == 200
    got = []
    for page in (1, 2, 3):
        body = _events(http, sbx, start="2024-04-15", end="2024-04-16", page=page, limit=80).json()
        assert body["meta"]["totalCount"] == 200 and body["meta"]["pages"] == 3
        assert body["meta"]["current"] == page and body["meta"]["count"] == len(body["data"])
        got.extend(body["data"])
    assert got == [openpanel_select(row, ()) for row in expected]
    # Only the default columns (+ groups); duration is selected but never mapped by transformEvent.
    assert set(got[0]) == {*OPENPANEL_DEFAULT_FIELDS, "groups"}
    created = [e["createdAt"] for e in got]
    assert created == sorted(created, reverse=True) and created[0].endswith("Z") and len(created[0]) == 24
    assert got[0]["country"] == "US" or len(got[0]["country"]) == 2
    # Fields named in includes (comma-separated or repeated) come back; properties are strings.
    named = _events(http, sbx, start="2024-04-15", end="2024-04-15", includes="properties,region").json()
    repeated = _events(
        http, sbx, start="2024-04-15", end="2024-04-15", includes=["properties", "region"]
    ).json()
    assert named == repeated
    assert {"properties", "region"} <= set(named["data"][0]) and "origin" not in named["data"][0]
    assert all(isinstance(v, str) for row in named["data"] for v in row["properties"].values())


def test_openpanel_limit_and_page_are_clamped(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_events_per_day = 200
    big = _events(http, sbx, start="2024-04-15", end="2024-04-15", limit=5000).json()
    assert big["meta"]["count"] == 100 and big["meta"]["pages"] == 1
    small = _events(http, sbx, start="2024-04-15", end="2024-04-15", limit=0, page=0).json()
    assert small["meta"]["count"] == 1 and small["meta"]["current"] == 1 and small["meta"]["pages"] == 100
    assert _events(http, sbx, start="2024-04-15", end="2024-04-15", page=9, limit=80).json()["data"] == []


def test_openpanel_lists_are_repeated_keys_or_json(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_events_per_day = 200
    want = len(
        list(
            openpanel_events(
                sbx.config, "proj-app", "2024-04-15", "2024-04-16", events=["purchase", "sign_up"]
            )
        )
    )
    assert want > 0
    for form in ({"event": ["purchase", "sign_up"]}, {"event": '["purchase","sign_up"]'}):
        body = _events(http, sbx, start="2024-04-15", end="2024-04-16", **form).json()
        assert body["meta"]["totalCount"] == want, form
    # A comma is part of the name: one event called "purchase,sign_up", which matches nothing.
    body = _events(http, sbx, start="2024-04-15", end="2024-04-16", event="purchase,sign_up").json()
    assert body["meta"]["totalCount"] == 0 and body["data"] == []


def test_openpanel_digit_strings_are_numbers(sbx: SandboxServer, http: requests.Session) -> None:
    r = _events(http, sbx, start="2024-04-15", end="2024-04-15", profileId="100017")
    assert r.status_code == 400
    assert r.json() == {
        "status": 400,
        "error": "FastifyError",
        "message": "querystring/profileId Expected string, received number",
    }
    # As a JSON string literal it stays a string.
    assert _events(http, sbx, start="2024-04-15", end="2024-04-15", profileId='"100017"').status_code == 200
    assert _events(http, sbx, limit="abc").status_code == 400


def test_openpanel_profile_lists_anonymous_device_events_count_does_not(
    sbx: SandboxServer, http: requests.Session
) -> None:
    kwargs = {"start": "2024-04-01", "end": "2024-04-30", "limit": 1000}
    body = http.get(
        sbx.url + "/export/events",
        params={"projectId": "proj-web", "profileId": "user_3", **kwargs},
        headers=OPENPANEL_HEADERS,
    ).json()
    own = [e for e in body["data"] if e["profileId"] == "user_3"]
    anonymous = [e for e in body["data"] if e["profileId"] != "user_3"]
    assert anonymous and all(e["profileId"] == e["deviceId"] == own[0]["deviceId"] for e in anonymous)
    assert body["meta"]["totalCount"] == len(own) < len(body["data"])
    assert body["meta"]["pages"] == 1


def test_openpanel_projects_and_error_bodies(sbx: SandboxServer, http: requests.Session) -> None:
    url = sbx.url + "/export/events"
    r = http.get(url, headers=OPENPANEL_HEADERS)
    assert r.status_code == 400
    assert r.json() == {"status": 400, "message": "project_id or projectId is required"}
    r = http.get(url, params={"projectId": "nope"}, headers=OPENPANEL_HEADERS)
    assert r.status_code == 404 and r.json() == {"status": 404, "message": "Project not found"}
    # A read client gets its own project without naming it, and 403 for another one.
    r = http.get(url, params={"start": "2024-04-15", "end": "2024-04-15", "limit": 1}, headers=READ_HEADERS)
    assert r.status_code == 200 and r.json()["data"][0]["projectId"] == "proj-web"
    r = http.get(url, params={"project_id": "proj-app"}, headers=READ_HEADERS)
    assert r.status_code == 403
    assert r.json() == {"status": 403, "message": "You do not have access to this project"}
    r = http.get(url, headers={**OPENPANEL_HEADERS, "openpanel-client-id": "not-a-uuid"})
    assert r.status_code == 401
    assert r.json() == {"error": "Unauthorized", "message": "Export: Client ID must be a valid UUIDv4"}
    r = _events(http, sbx, start="garbage", end="2024-04-15")
    assert r.status_code == 500 and r.json()["message"] == "Invalid time value"


def test_openpanel_live_traffic_goes_on_top(sbx: SandboxServer, http: requests.Session) -> None:
    # The sandbox's clock, pinned at noon and moved by hand: "today" holds half a day of events at
    # any real time (just after midnight a real today is empty), and live traffic arrives by it.
    noon = dt.datetime(2024, 4, 15, 12, tzinfo=UTC)
    sbx.config.now = noon.timestamp()
    params = {"projectId": "proj-web", "start": "2024-04-15", "end": "2024-04-15", "limit": 10}
    first = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).json()
    # Nothing from the future: today's events stop at the sandbox clock.
    created = [dt.datetime.fromisoformat(e["createdAt"].replace("Z", "+00:00")) for e in first["data"]]
    assert len(created) == 10 and max(created) <= noon
    sbx.config.openpanel_live_events_per_second = 50
    http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)  # live from noon
    sbx.config.now = noon.timestamp() + 0.3
    later = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).json()
    grew = later["meta"]["totalCount"] - first["meta"]["totalCount"]
    assert grew >= 10
    assert all(e["id"].startswith("evt_live") for e in later["data"])
    page2 = http.get(
        sbx.url + "/export/events", params={**params, "page": 2}, headers=OPENPANEL_HEADERS
    ).json()
    assert page2["meta"]["totalCount"] >= later["meta"]["totalCount"]


def test_openpanel_live_events_interleave_with_the_days_events_newest_first(
    sbx: SandboxServer, http: requests.Session
) -> None:
    """Ten minutes of live traffic on top of a day: every event once, newest first throughout."""
    noon = dt.datetime(2024, 4, 15, 12, tzinfo=UTC).timestamp()
    sbx.config.update({"openpanel_events_per_day": 2000, "openpanel_rate_limit": None, "now": noon})
    sbx.config.openpanel_live_events_per_second = 1.0
    params = {"projectId": "proj-web", "start": "2024-04-15", "end": "2024-04-15", "limit": 150}
    http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)  # live from noon
    sbx.config.now = noon + 600
    got: list[dict] = []
    for page in range(1, 30):
        body = http.get(
            sbx.url + "/export/events", params={**params, "page": page}, headers=OPENPANEL_HEADERS
        ).json()
        got.extend(body["data"])
        if not body["data"]:
            break
    live = [row for row in got if row["id"].startswith("evt_live")]
    now_ms = int(sbx.config.now * 1000)
    day = list(openpanel_events(sbx.config, "proj-web", "2024-04-15", "2024-04-15", now_ms=now_ms))
    assert [row for row in got if not row["id"].startswith("evt_live")] == [
        openpanel_select(r, ()) for r in day
    ]
    assert len(live) == len({row["id"] for row in live}) == 601
    assert body["meta"]["totalCount"] == len(got) == len(day) + 601
    created = [row["createdAt"] for row in got]
    assert created == sorted(created, reverse=True)


def test_openpanel_rate_limit_fixed_window_per_client(sbx: SandboxServer, http: requests.Session) -> None:
    params = {"projectId": "proj-web", "start": "2024-04-15", "end": "2024-04-15", "limit": 1}
    for i in range(100):
        r = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)
        assert r.status_code == 200, i
        assert r.headers["x-ratelimit-remaining"] == str(99 - i)
        assert 1 <= int(r.headers["x-ratelimit-reset"]) <= 10
    r = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)
    assert r.status_code == 429
    assert r.json() == {
        "status": 429,
        "error": "Too Many Requests",
        "message": "You have exceeded the rate limit for this endpoint.",
    }
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert r.headers["x-ratelimit-limit"] == "100" and r.headers["x-ratelimit-remaining"] == "0"
    # Another client id has its own window; requests are counted before authentication.
    assert http.get(sbx.url + "/export/events", params=params, headers=READ_HEADERS).status_code == 200
    sbx.config.openpanel_rate_limit, sbx.config.openpanel_rate_window = 3, 0.3
    sbx.reset()
    bad = {**OPENPANEL_HEADERS, "openpanel-client-secret": "wrong"}
    codes = [http.get(sbx.url + "/export/events", params=params, headers=bad).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    time.sleep(0.35)
    assert http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).status_code == 200


def test_openpanel_chart_end_date_is_midnight_and_inclusive(
    sbx: SandboxServer, http: requests.Session
) -> None:
    # A date-only endDate is that day's 00:00:00: startDate = endDate = D is (nearly) empty.
    assert _chart(http, sbx, startDate="2024-04-15", endDate="2024-04-15")["series"] == []
    week = _chart(http, sbx, startDate="2024-04-15", endDate="2024-04-21")
    assert [p["date"] for p in week["series"][0]["data"]] == [f"2024-04-{d} 00:00:00" for d in range(15, 21)]
    # Instants: exactly the days between them.
    exact = _chart(http, sbx, startDate="2024-04-15T00:00:00Z", endDate="2024-04-22T00:00:00Z")
    assert [p["date"][:10] for p in exact["series"][0]["data"]] == [f"2024-04-{d}" for d in range(15, 22)]


def test_openpanel_chart_dates_in_organization_zone(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_timezone = "America/New_York"
    body = _chart(http, sbx, startDate="2024-04-15T04:00:00Z", endDate="2024-04-16T04:00:00Z")
    assert [p["date"] for p in body["series"][0]["data"]] == ["2024-04-15 00:00:00"]
    hourly = _chart(
        http, sbx, startDate="2024-04-15T04:00:00Z", endDate="2024-04-15T06:00:00Z", interval="hour"
    )
    assert [p["date"] for p in hourly["series"][0]["data"]] == ["2024-04-15 00:00:00", "2024-04-15 01:00:00"]
    weekly = _chart(
        http, sbx, startDate="2024-04-15T04:00:00Z", endDate="2024-04-29T04:00:00Z", interval="week"
    )
    assert [p["date"] for p in weekly["series"][0]["data"]] == ["2024-04-15", "2024-04-22"]


def test_openpanel_chart_previous_breakdowns_and_names(sbx: SandboxServer, http: requests.Session) -> None:
    body = _chart(
        http,
        sbx,
        events='[{"name":"screen_view"},{"name":"purchase"}]',
        breakdowns='[{"name":"referrer"},{"name":"shoe_size"}]',
        startDate="2024-04-15T00:00:00Z",
        endDate="2024-04-17T00:00:00Z",
        previous="true",
    )
    sums = [s["metrics"]["sum"] for s in body["series"]]
    assert sums == sorted(sums, reverse=True)
    names = {tuple(s["names"]) for s in body["series"]}
    # Two events: "(A) "/"(B) " prefixes; the empty referrer is dropped; unknown breakdowns too.
    assert ("(A) screen_view",) in names and ("(A) screen_view", "https://www.google.com/") in names
    direct = next(s for s in body["series"] if s["names"] == ["(A) screen_view"])
    assert "breakdowns" not in direct["event"] and direct["event"]["name"] == "screen_view"
    google = next(s for s in body["series"] if s["names"] == ["(B) purchase", "https://www.google.com/"])
    assert google["event"] == {
        "id": "B",
        "name": "purchase",
        "breakdowns": {"referrer": "https://www.google.com/"},
    }
    point = google["data"][0]
    assert set(point["previous"]) == {"diff", "state", "value"}
    assert point["previous"]["state"] in ("positive", "negative", "neutral")
    r = http.get(
        sbx.url + "/export/charts",
        params={"projectId": "proj-web", "events": '[{"segment":"user"}]'},
        headers=OPENPANEL_HEADERS,
    )
    assert r.status_code == 400 and r.json()["message"] == "querystring/events/0/name Required"
    r = http.get(
        sbx.url + "/export/charts",
        params={"projectId": "proj-web", "events": '[{"name":"x"}]', "interval": "year"},
        headers=OPENPANEL_HEADERS,
    )
    assert r.status_code == 400 and r.json()["message"].startswith("querystring/interval Invalid enum")


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
        "metrics twice": {**ok, "metrics": ["http", "http"]},
        "filter": {**ok, "filters": {"device.type": ["mobile"]}},
        "strings": {**ok, "filters": {"browser.name": "Chrome"}},
        "2 dimensions": {**ok, "dimensions": ["browser.name", "os.name", "country.code"]},
        "dimension": {**ok, "dimensions": ["device.type"]},
        "dimensions twice": {**ok, "dimensions": ["os.name", "os.name"]},
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
