"""Shapes the real OpenPanel server produces (issue 22): a bucket at a chart's end, NUL countries,
series left out, bracket parameters ignored."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import requests

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.openpanel import OPENPANEL_EVENT_NAMES, OPENPANEL_NO_COUNTRY, openpanel_events

from .conftest import OPENPANEL_HEADERS

END = "2024-04-15T17:00:00.000Z"


def _chart(http: requests.Session, sbx: SandboxServer, **params: Any) -> dict[str, Any]:
    base = {"projectId": "proj-web", "interval": "hour", "startDate": "2024-04-15T10:00:00Z", "endDate": END}
    r = http.get(sbx.url + "/export/charts", params={**base, **params}, headers=OPENPANEL_HEADERS)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _last_dates(body: dict[str, Any]) -> dict[str, str]:
    return {
        s["event"]["name"] + "|" + "|".join(s["names"][1:]): s["data"][-1]["date"] for s in body["series"]
    }


def test_chart_includes_an_event_exactly_at_end(sbx: SandboxServer, http: requests.Session) -> None:
    sbx.config.openpanel_boundary_events = True
    day = list(openpanel_events(sbx.config, "proj-web", "2024-04-15", "2024-04-15"))
    at_end = [e for e in day if e["createdAt"] == END]
    assert len(at_end) == 1  # the knob puts one event exactly on each whole hour
    hit = at_end[0]["name"]
    other = "button_click" if hit != "button_click" else "screen_view"
    events = json.dumps([{"name": hit}, {"name": other}])
    body = _chart(http, sbx, events=events)
    by_name = {s["event"]["name"]: s for s in body["series"]}
    # created_at <= end: the event at end makes a bucket at end appear, for its series only.
    assert by_name[hit]["data"][-1] == {"date": "2024-04-15 17:00:00", "count": 1}
    assert len(by_name[hit]["data"]) == 8 and by_name[hit]["data"][-2]["date"] == "2024-04-15 16:00:00"
    assert by_name[other]["data"][-1]["date"] == "2024-04-15 16:00:00" and len(by_name[other]["data"]) == 7
    # With a breakdown, the point goes to the event's own group.
    split = _chart(http, sbx, events=json.dumps([{"name": hit}]), breakdowns='[{"name":"referrer"}]')
    group = f"{hit}|{at_end[0]['referrer']}".rstrip("|")
    ends = _last_dates(split)
    assert ends.pop(group) == "2024-04-15 17:00:00"
    assert set(ends.values()) == {"2024-04-15 16:00:00"}
    # Off (the default), no event sits exactly on the hour: the chart stops at the last full bucket.
    sbx.config.openpanel_boundary_events = False
    assert not [
        e
        for e in openpanel_events(sbx.config, "proj-web", "2024-04-15", "2024-04-15")
        if e["createdAt"] == END
    ]
    assert set(_last_dates(_chart(http, sbx, events=events)).values()) == {"2024-04-15 16:00:00"}


def test_unresolved_countries_are_two_nul_characters(sbx: SandboxServer, http: requests.Session) -> None:
    params = {"projectId": "proj-app", "start": "2024-04-15", "end": "2024-04-15", "limit": 1000}
    plain = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).json()["data"]
    assert all(len(e["country"]) == 2 and e["country"].isalpha() for e in plain)
    assert len(plain) == 1000  # the newest 1000 of the day's 1200
    sbx.config.openpanel_unknown_country_share = 0.2
    r = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)
    assert "\\u0000\\u0000" in r.text  # JSON-escaped on the wire, as Fastify sends them
    rows = r.json()["data"]
    unknown = [e for e in rows if e["country"] == OPENPANEL_NO_COUNTRY]
    assert 0.1 < len(unknown) / len(rows) < 0.3 and all(e["city"] == "" for e in unknown)
    assert [e["id"] for e in rows] == [e["id"] for e in plain]  # nothing else changes
    truth = itertools.islice(openpanel_events(sbx.config, "proj-app", "2024-04-15", "2024-04-15"), len(rows))
    assert rows == [{k: v for k, v in e.items() if k in rows[0]} for e in truth]


def test_series_without_events_are_left_out_and_brackets_are_ignored(
    sbx: SandboxServer, http: requests.Session
) -> None:
    both = _chart(http, sbx, events='[{"name":"screen_view"},{"name":"never_happens"}]')
    assert [s["event"]["name"] for s in both["series"]] == ["screen_view"]
    # A series with data is zero-filled: one point per bucket from start up to the end bucket.
    assert [p["date"][11:13] for p in both["series"][0]["data"]] == [f"{h}" for h in range(10, 17)]
    assert _chart(http, sbx, events='[{"name":"never_happens"}]')["series"] == []
    bracket = _chart(http, sbx, **{"series[0][name]": "screen_view"})
    assert bracket["series"] == []


def test_no_end_bucket_from_the_future(sbx: SandboxServer, http: requests.Session) -> None:
    """A range ending at tomorrow's midnight meets no event there, even with events on every hour."""
    sbx.config.openpanel_boundary_events = True
    sbx.config.now = dt.datetime(2024, 4, 15, 17, 30, tzinfo=dt.timezone.utc).timestamp()
    for params in (
        {"range": "30d", "startDate": None, "endDate": None},  # ends at tomorrow 00:00
        {"startDate": "2024-04-15T00:00:00Z", "endDate": "2024-04-16T00:00:00Z"},
    ):
        for name in OPENPANEL_EVENT_NAMES:
            chart = _chart(http, sbx, events=json.dumps([{"name": name}]), interval="day", **params)
            assert chart["series"], name
            assert all(p["date"] < "2024-04-16" for s in chart["series"] for p in s["data"]), name
