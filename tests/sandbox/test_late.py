"""The past keeps changing: each API's late-data switches, over HTTP, against the truth with ``as_of``.

For every API: with the clock pinned just after a window and then later, what the route serves
equals the truth as of that clock, only ever grows, and equals the final truth from the horizon on.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
import requests

from analytics_export_sandbox import SandboxConfig, SandboxServer
from analytics_export_sandbox.braze import braze_window
from analytics_export_sandbox.browsee import browsee_sessions
from analytics_export_sandbox.openpanel import openpanel_chart, openpanel_events, openpanel_select
from analytics_export_sandbox.peer5 import peer5_rows
from analytics_export_sandbox.sealmetrics import sealmetrics_file_chunks, sealmetrics_rows

from .conftest import BRAZE_HEADERS, BROWSEE_AUTH, OPENPANEL_HEADERS, PEER5_HEADERS, SEAL_HEADERS

UTC = dt.timezone.utc
DAY = 86_400
D0 = int(dt.datetime(2024, 4, 15, tzinfo=UTC).timestamp())  # the window: 2024-04-15 (UTC)
D1 = D0 + DAY


def _set(http: requests.Session, sbx: SandboxServer, **fields: Any) -> None:
    """Change the sandbox as a test run by another process would: POST /_sandbox/config."""
    r = http.post(sbx.url + "/_sandbox/config", json=fields)
    assert r.status_code == 200, r.text


def _grows(snapshots: list[int]) -> None:
    assert snapshots == sorted(snapshots), snapshots
    assert snapshots[0] < snapshots[-1], snapshots  # something really was late


def test_late_config_merges_per_api_and_rejects_nonsense(sbx: SandboxServer, http: requests.Session) -> None:
    _set(http, sbx, late_share={"braze": 0.5}, late_horizon={"braze": 60})
    _set(http, sbx, late_share={"peer5": 0.25})
    assert sbx.config.late_share == {
        "browsee": 0,
        "braze": 0.5,
        "openpanel": 0,
        "peer5": 0.25,
        "sealmetrics": 0,
    }
    assert sbx.config.late_horizon["braze"] == 60 and sbx.config.late_horizon["peer5"] == 3600
    partial = SandboxConfig(late_share={"peer5": 0.5}, late_horizon={"peer5": 60})
    assert partial.late_horizon == {**dict.fromkeys(partial.late_share, 3600.0), "peer5": 60.0}
    with pytest.raises(ValueError, match="late_share keys must be among"):
        SandboxConfig(late_share={"peer_5": 0.5})
    for bad in (
        {"late_share": {"brazе": 0.1}},  # a Cyrillic e: a typo must not silently mean "on time"
        {"late_share": {"braze": 1.5}},
        {"late_horizon": {"braze": 0}},
        {"openpanel_flush_lag": -1},
        {"browsee_running": "sometimes"},
    ):
        r = http.post(sbx.url + "/_sandbox/config", json=bad)
        assert r.status_code == 400, bad
        assert next(iter(bad)) in r.json()["error"]


# -- OpenPanel ---------------------------------------------------------------------------------------
def _op_all(http: requests.Session, sbx: SandboxServer) -> tuple[int, list[dict[str, Any]]]:
    """(totalCount of page 1, every row paged through) for 2024-04-15."""
    rows: list[dict[str, Any]] = []
    page, total = 1, None
    while True:
        params = {
            "projectId": "proj-app",
            "start": "2024-04-15",
            "end": "2024-04-15",
            "limit": 1000,
            "page": page,
        }
        body = http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS).json()
        total = body["meta"]["totalCount"] if total is None else total
        assert body["meta"]["totalCount"] == total  # the clock is pinned: nothing moves while paging
        rows += body["data"]
        if not body["data"]:
            return total, rows
        page += 1


def test_openpanel_flush_lag_and_back_dated_events(sbx: SandboxServer, http: requests.Session) -> None:
    _set(http, sbx, openpanel_flush_lag=10, late_share={"openpanel": 0.3}, late_horizon={"openpanel": 10800})
    config = sbx.config
    final = [
        openpanel_select(e, ()) for e in openpanel_events(config, "proj-app", "2024-04-15", "2024-04-15")
    ]
    counts = []
    for t in (D1 - 5, D1 + 5, D1 + 600, D1 + 3600, D1 + 3 * 3600, D1 + 4 * 3600):
        _set(http, sbx, now=t)
        total, rows = _op_all(http, sbx)
        truth = list(openpanel_events(config, "proj-app", "2024-04-15", "2024-04-15", as_of=t))
        assert total == len(rows)
        assert rows == [openpanel_select(e, ()) for e in truth]
        assert {e["id"] for e in rows} <= {e["id"] for e in final}
        stamps = [e["createdAt"] for e in rows]
        assert stamps == sorted(stamps, reverse=True)
        # The buffer: nothing created within the lag is visible yet.
        cut = (
            dt.datetime.fromtimestamp(t - 10, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        assert all(s <= cut for s in stamps)
        counts.append(total)
    _grows(counts)
    assert rows == final  # from createdAt + horizon on, every back-dated event is in place
    assert counts[-2] == counts[-1]
    # Back-dated events land in a past day: rows older than the horizon are all there, a newer
    # one may be missing while an even newer one is already shown.
    _set(http, sbx, now=D1 + 60)
    _total, early = _op_all(http, sbx)
    seen = {e["id"] for e in early}
    missing = [i for i, e in enumerate(final) if e["id"] not in seen]
    assert missing and min(missing) < max(i for i, e in enumerate(final) if e["id"] in seen and i < 200)


def test_openpanel_chart_follows_arrivals(sbx: SandboxServer, http: requests.Session) -> None:
    _set(http, sbx, openpanel_flush_lag=10, late_share={"openpanel": 0.5}, late_horizon={"openpanel": 7200})
    params = {
        "projectId": "proj-web",
        "events": '[{"name":"screen_view"}]',
        "interval": "hour",
        "startDate": "2024-04-15T18:00:00Z",
        "endDate": "2024-04-15T23:59:59Z",
    }
    start, end = dt.datetime(2024, 4, 15, 18, tzinfo=UTC), dt.datetime(2024, 4, 15, 23, 59, 59, tzinfo=UTC)
    final = openpanel_chart(sbx.config, "proj-web", [{"name": "screen_view"}], [], "hour", start, end, False)
    sums, bodies = [], []
    for t in (D0 + 18 * 3600 - 60, D1 - 1800, D1 + 1, D1 + 3600, D1 + 7210):
        _set(http, sbx, now=t)
        body = http.get(sbx.url + "/export/charts", params=params, headers=OPENPANEL_HEADERS).json()
        want = openpanel_chart(
            sbx.config, "proj-web", [{"name": "screen_view"}], [], "hour", start, end, False, as_of=t
        )
        assert body == want
        sums.append(body["metrics"]["sum"])
        bodies.append(body)
    assert bodies[0] == {"series": [], "metrics": {"sum": 0, "average": 0, "min": 0, "max": 0}}  # none yet
    _grows(sums)
    assert body == final


# -- Browsee -----------------------------------------------------------------------------------------
def _browsee(
    http: requests.Session, sbx: SandboxServer, start: int, end: int, **extra: Any
) -> list[dict[str, Any]]:
    """Every page of an export (``total`` checked against the rows served)."""
    rows: list[dict[str, Any]] = []
    while True:
        body = {**BROWSEE_AUTH, "start": start, "end": end, "from": len(rows), "limit": 100, **extra}
        exports = http.post(sbx.url + "/api/v1/export/sessions", json=body).json()["exports"]
        rows += exports["data"]
        if exports["to"] >= exports["total"]:
            assert exports["total"] == len(rows)
            return rows


@pytest.mark.parametrize("running", ["growing", "hidden", "final"])
def test_browsee_sessions_appear_and_change_after_their_start(
    sbx: SandboxServer, http: requests.Session, running: str
) -> None:
    _set(http, sbx, browsee_running=running, late_share={"browsee": 0.4}, late_horizon={"browsee": 1200})
    start, end = D1 - 4 * 3600, D1  # the last four hours of the day
    final = list(browsee_sessions(sbx.config, start, end))
    seen_sizes = []
    durations: dict[str, int] = {}
    for t in (D1 - 3600, D1 + 1, D1 + 600, D1 + 1800, D1 + 3000):
        _set(http, sbx, now=t)
        rows = _browsee(http, sbx, start, end)
        assert rows == list(browsee_sessions(sbx.config, start, end, as_of=t))
        assert all(r["timestamp"] <= t * 1000 for r in rows)  # never before its start
        for r in rows:
            assert r["duration"] >= durations.get(r["sessionId"], 0)  # fields only grow
            durations[r["sessionId"]] = r["duration"]
            ended = r["timestamp"] + r["duration"] <= t * 1000
            if running == "hidden":
                assert ended
            if running == "growing" and not ended:
                assert r["duration"] == t * 1000 - r["timestamp"]
                assert (
                    r["activeTime"] + r["inactiveTime"] == r["duration"] and len(r["urls"]) == r["pageCount"]
                )
        seen_sizes.append(len(rows))
    _grows(seen_sizes)
    assert rows == final  # 1800 s (the longest session) + 1200 s after the window: final


# -- Braze -------------------------------------------------------------------------------------------
def test_braze_counts_grow_until_settled_in_both_units(sbx: SandboxServer, http: requests.Session) -> None:
    _set(http, sbx, late_share={"braze": 0.3}, late_horizon={"braze": 3 * 3600})
    start, end = dt.datetime.fromtimestamp(D0, tz=UTC), dt.datetime.fromtimestamp(D1, tz=UTC)
    final_hours = braze_window(sbx.config, start, end, "hour")
    totals = []
    for t in (D1 - 7200, D1, D1 + 1800, D1 + 7200, D1 + 3 * 3600):
        _set(http, sbx, now=t)
        got = {}
        for unit, length in (("hour", 24), ("day", 1)):
            params = {"length": length, "unit": unit, "ending_at": "2024-04-15T23:00:00Z"}
            data = http.get(sbx.url + "/sessions/data_series", params=params, headers=BRAZE_HEADERS).json()[
                "data"
            ]
            truth = braze_window(sbx.config, start, end, unit, as_of=t)
            assert data == [{"time": b["time"], "sessions": b["sessions"]} for b in truth]
            got[unit] = data
        assert got["day"][0]["sessions"] == sum(h["sessions"] for h in got["hour"])  # units agree
        totals.append(got["day"][0]["sessions"])
    _grows(totals)
    assert got["hour"] == [{"time": b["time"], "sessions": b["sessions"]} for b in final_hours]


# -- Peer5 -------------------------------------------------------------------------------------------
def test_peer5_json_and_csv_grow_together(sbx: SandboxServer, http: requests.Session) -> None:
    _set(http, sbx, late_share={"peer5": 0.5}, late_horizon={"peer5": 1800})
    frm, to = (D1 - 6 * 3600) * 1000, D1 * 1000
    query = {
        "from": frm,
        "to": to,
        "interval": "1h",
        "metrics": ["http", "sessions"],
        "dimensions": ["country.code"],
    }
    final = peer5_rows(sbx.config, frm, to, "1h", ["http", "sessions"], None, ["country.code"])
    sums = []
    for t in (D1 - 1800, D1 + 1, D1 + 900, D1 + 1800):
        _set(http, sbx, now=t)
        rows = http.post(sbx.url + "/v1/export", json=query, headers=PEER5_HEADERS).json()["data"]
        assert rows == peer5_rows(
            sbx.config, frm, to, "1h", ["http", "sessions"], None, ["country.code"], as_of=t
        )
        text = http.post(sbx.url + "/v1/export?format=csv", json=query, headers=PEER5_HEADERS).text
        assert [int(r["http"]) for r in csv.DictReader(io.StringIO(text))] == [r["http"] for r in rows]
        sums.append(sum(r["http"] for r in rows))
    _grows(sums)
    assert rows == final


# -- Sealmetrics -------------------------------------------------------------------------------------
def test_sealmetrics_stream_grows_and_a_job_keeps_its_creation_data(
    sbx: SandboxServer, http: requests.Session
) -> None:
    _set(
        http,
        sbx,
        late_share={"sealmetrics": 0.4},
        late_horizon={"sealmetrics": 4 * 3600},
        sealmetrics_job_delay=0,
    )
    body = {"export_type": "sources", "format": "csv", "date_from": "2024-04-14", "date_to": "2024-04-15"}
    params = {
        "account_id": "demo-site",
        "filters": {},
        **{k: body[k] for k in ("export_type", "date_from", "date_to")},
    }
    url = sbx.url + "/api/v1/exports"

    def served(t: float | None) -> bytes:
        return b"".join(sealmetrics_file_chunks(sbx.config, params, "csv", as_of=t))

    def views(content: bytes) -> int:
        return sum(int(r["page_views"]) for r in csv.DictReader(io.StringIO(content.decode())))

    _set(http, sbx, now=D1 + 60)
    job = http.post(url, params={"account_id": "demo-site"}, json=body, headers=SEAL_HEADERS).json()["job"]
    totals = []
    for t in (D1 + 60, D1 + 3600, D1 + 4 * 3600):
        _set(http, sbx, now=t)
        r = http.post(url + "/stream", params={"account_id": "demo-site"}, json=body, headers=SEAL_HEADERS)
        assert r.content == served(t) and int(r.headers["Content-Length"]) == len(r.content)
        totals.append(views(r.content))
    _grows(totals)
    assert r.content == served(None)
    # The job's file was computed at its creation: later growth does not change it.
    download = http.get(job["download_url"])
    assert download.content == served(D1 + 60) and len(download.content) == job["file_size_bytes"]
    assert views(download.content) == totals[0] < totals[-1]


def test_late_switches_off_serve_final_data(sbx: SandboxServer, http: requests.Session) -> None:
    """Off (the default), the clock changes nothing: every truth with ``as_of`` is the final one."""
    config = sbx.config
    _set(http, sbx, now=D1 + 1)
    checks: list[Callable[[float | None], object]] = [
        lambda a: list(openpanel_events(config, "proj-app", "2024-04-14", "2024-04-14", as_of=a)),
        lambda a: list(browsee_sessions(config, D1 - 3600, D1, as_of=a)),
        lambda a: braze_window(
            config,
            dt.datetime.fromtimestamp(D0, tz=UTC),
            dt.datetime.fromtimestamp(D1, tz=UTC),
            "hour",
            as_of=a,
        ),
        lambda a: peer5_rows(config, (D1 - 3600) * 1000, D1 * 1000, "1m", ["http"], as_of=a),
        lambda a: b"".join(sealmetrics_file_chunks(config, _SM_PARAMS, "csv", as_of=a)),
    ]
    for check in checks:
        assert check(D1 + 1) == check(None)


_SM_PARAMS = {
    "account_id": "demo-site",
    "export_type": "pages",
    "date_from": "2024-04-15",
    "date_to": "2024-04-15",
}


def test_truth_endpoint_gives_final_data_or_as_of(sbx: SandboxServer, http: requests.Session) -> None:
    """GET /_sandbox/truth/<api> answers what the truth functions do, for a sandbox in another process."""
    _set(http, sbx, late_share=dict.fromkeys(("browsee", "braze", "openpanel", "peer5", "sealmetrics"), 0.5))
    _set(
        http, sbx, late_horizon=dict.fromkeys(("browsee", "braze", "openpanel", "peer5", "sealmetrics"), 7200)
    )
    t = D1 + 600
    _set(http, sbx, now=t)
    config = sbx.config
    start, end = dt.datetime.fromtimestamp(D0, tz=UTC), dt.datetime.fromtimestamp(D1, tz=UTC)
    sm = {
        "account_id": "demo-site",
        "export_type": "sources",
        "date_from": "2024-04-15",
        "date_to": "2024-04-15",
    }
    cases: list[tuple[str, dict[str, Any], Callable[[float | None], list[dict[str, Any]]]]] = [
        (
            "openpanel",
            {
                "projectId": "proj-docs",
                "start": "2024-04-15",
                "end": "2024-04-15",
                "event": "purchase,sign_up",
            },
            lambda a: list(
                openpanel_events(
                    config, "proj-docs", "2024-04-15", "2024-04-15", ["purchase", "sign_up"], as_of=a
                )
            ),
        ),
        (
            "browsee",
            {"start": D1 - 3600, "end": D1},
            lambda a: list(browsee_sessions(config, D1 - 3600, D1, as_of=a)),
        ),
        (
            "braze",
            {"start": "2024-04-15T00:00:00Z", "end": "2024-04-16T00:00:00Z", "unit": "hour"},
            lambda a: braze_window(config, start, end, "hour", as_of=a),
        ),
        (
            "peer5",
            {"from": (D1 - 3600) * 1000, "to": D1 * 1000, "interval": "5m", "metrics": "http,sessions"},
            lambda a: peer5_rows(config, (D1 - 3600) * 1000, D1 * 1000, "5m", ["http", "sessions"], as_of=a),
        ),
        ("sealmetrics", sm, lambda a: list(sealmetrics_rows(config, {**sm, "filters": {}}, a))),
    ]
    for api, query, truth in cases:
        final = http.get(f"{sbx.url}/_sandbox/truth/{api}", params=query).json()["data"]
        then = http.get(f"{sbx.url}/_sandbox/truth/{api}", params={**query, "as_of": t}).json()["data"]
        assert final == truth(None) and then == truth(t), api
        assert final != then, api  # the switches really made something late at t
    r = http.get(f"{sbx.url}/_sandbox/truth/braze", params={"end": "2024-04-16T00:00:00Z"})
    assert r.status_code == 400 and "'start'" in r.json()["error"]
    assert http.get(f"{sbx.url}/_sandbox/truth/mixpanel").status_code == 404


def test_openpanel_live_traffic_waits_for_the_flush_too(sbx: SandboxServer, http: requests.Session) -> None:
    noon = D0 + 12 * 3600
    _set(
        http, sbx, openpanel_events_per_day=1000, openpanel_rate_limit=None, now=noon, openpanel_flush_lag=10
    )
    _set(http, sbx, openpanel_live_events_per_second=1.0)
    params = {"projectId": "proj-web", "start": "2024-04-15", "end": "2024-04-15", "limit": 1000}
    http.get(sbx.url + "/export/events", params=params, headers=OPENPANEL_HEADERS)  # live from noon
    _set(http, sbx, now=noon + 600)
    rows: list[dict[str, Any]] = []
    for page in (1, 2):
        body = http.get(
            sbx.url + "/export/events", params={**params, "page": page}, headers=OPENPANEL_HEADERS
        )
        rows += body.json()["data"]
    assert body.json()["meta"]["totalCount"] == len(rows)
    live = [row for row in rows if row["id"].startswith("evt_live")]
    assert len(live) == 591  # noon .. noon + 590 s: the last 10 s are still in the buffer
    rest = [row for row in rows if not row["id"].startswith("evt_live")]
    truth = openpanel_events(sbx.config, "proj-web", "2024-04-15", "2024-04-15", as_of=noon + 600)
    assert rest == [openpanel_select(e, ()) for e in truth]


def test_browsee_growing_session_joins_a_segment_when_it_gets_there(
    sbx: SandboxServer, http: requests.Session
) -> None:
    _set(http, sbx, browsee_running="growing", now=D1 - 600, browsee_sessions_per_day=4800)
    start, end = D1 - 3600, D1
    early = _browsee(http, sbx, start, end, segmentId="seg-checkout")
    assert all(any(u.startswith("/checkout") for u in r["urls"]) for r in early)
    assert early == list(browsee_sessions(sbx.config, start, end, "seg-checkout", as_of=D1 - 600))
    final = list(browsee_sessions(sbx.config, start, end, "seg-checkout"))
    assert len(early) < len([r for r in final if r["timestamp"] <= (D1 - 600) * 1000])
    _set(http, sbx, now=D1 + 1800)
    assert _browsee(http, sbx, start, end, segmentId="seg-checkout") == final
