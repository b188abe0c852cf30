"""OpenPanelHook against the sandbox's reading of the real server: one test per finding, real sockets.

The findings come from Openpanel-dev/openpanel (export controller and router, query parser,
event and chart services, rate limiter); the sandbox serves them, these tests check the hook
gets every row right despite them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook
from airflow_provider_analytics_export.hooks.openpanel_charts import breakdown_labels, chart_rows
from airflow_provider_analytics_export.hooks.openpanel_query import EVENT_FIELDS, query_literal
from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.openpanel import openpanel_chart, openpanel_events
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def truth(sandbox: SandboxServer, window: tuple[dt.datetime, dt.datetime], **kwargs) -> list[dict]:
    """The sandbox's events created in the window, newest first."""
    first, last = window[0].date(), (window[1] - dt.timedelta(microseconds=1)).date()
    return [
        row
        for row in openpanel_events(sandbox.config, "proj-web", first, last, **kwargs)
        if window[0] <= dt.datetime.fromisoformat(row["createdAt"].replace("Z", "+00:00")) < window[1]
    ]


def calls(sandbox: SandboxServer) -> list[dict]:
    return [entry for entry in sandbox.requests_log if entry["api"] == "openpanel"]


def connection(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, conn_id: str, **fields) -> None:
    conn = {"conn_type": "openpanel", "host": sandbox.url, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


# -- events ---------------------------------------------------------------------------------------


def test_several_events_are_sent_as_repeated_keys_and_all_come_back(sandbox_reset):
    rows = list(OpenPanelHook().iter_events(None, *DAY, events=["screen_view", "button_click"]))
    assert rows == truth(sandbox_reset, DAY, events=["screen_view", "button_click"])
    assert {row["name"] for row in rows} == {"screen_view", "button_click"} and len(rows) > 1000
    query = parse_qs(calls(sandbox_reset)[0]["query"])
    assert query["event"] == ["screen_view", "button_click"]  # not "screen_view,button_click"


def test_the_full_event_is_exported_by_default_and_fields_narrow_it(sandbox_reset):
    rows = list(OpenPanelHook().iter_events(None, *DAY, events="purchase"))
    assert rows == truth(sandbox_reset, DAY, events=["purchase"]) and rows
    assert list(rows[0]) == list(EVENT_FIELDS)
    assert rows[0]["properties"]["total"] and rows[0]["region"] and rows[0]["origin"]
    narrow = list(OpenPanelHook().iter_events(None, *DAY, events="purchase", fields=["name", "properties"]))
    assert list(narrow[0]) == ["id", "name", "createdAt", "properties"]
    assert narrow == [{key: row[key] for key in narrow[0]} for row in rows]
    query = parse_qs(calls(sandbox_reset)[-1]["query"])
    assert query["includes"] == ["id", "name", "createdAt", "properties"]


def test_columns_do_not_depend_on_what_the_server_sends_by_default(scripted: ScriptedServer, monkeypatch):
    """An older server sending every column, a newer one only its defaults: the columns not asked for
    are dropped either way. Rows are otherwise as sent (issue 17: no nulls added for absent fields,
    a field we do not know kept); csv/parquet get their fixed columns from the declared schema."""
    conn = {"conn_type": "openpanel", "host": scripted.url, "login": "id", "password": "secret"}
    monkeypatch.setenv("AIRFLOW_CONN_OPENPANEL_SCRIPTED", json.dumps(conn))
    moment = "2024-04-15T10:00:00.000Z"
    rows = [
        {"id": "a", "createdAt": moment, "name": "x", "duration": 5, "groups": []},
        {"id": "b", "createdAt": moment},
    ]
    scripted.queue(Reply(200, {"meta": {"totalCount": 2, "pages": 1, "current": 1}, "data": rows}))
    got = list(OpenPanelHook("openpanel_scripted").iter_events("p", *DAY, fields=["name", "region"]))
    assert got == [
        {"id": "a", "createdAt": moment, "name": "x", "duration": 5},
        {"id": "b", "createdAt": moment},
    ]


def test_values_the_server_would_parse_are_sent_as_json_strings():
    assert query_literal("screen_view") == "screen_view"
    assert query_literal("a,b") == "a,b"
    for text in ("100017", "007", "-3", "1.5", "true", "null", '["x"]', '{"a": 1}'):
        assert json.loads(query_literal(text)) == text, text


def test_a_digits_only_profile_id_exports_exactly(sandbox_reset):
    window = dt.datetime(2024, 4, 1, tzinfo=UTC), dt.datetime(2024, 4, 30, tzinfo=UTC)
    rows = list(OpenPanelHook().iter_events(None, *window, profile_id="100017"))
    assert rows == truth(sandbox_reset, window, profile_id="100017") and rows
    assert {row["profileId"] for row in rows} >= {"100017"}


def test_profile_export_keeps_the_stitched_anonymous_events_and_checks_the_profile_count(sandbox_reset):
    window = dt.datetime(2024, 4, 1, tzinfo=UTC), dt.datetime(2024, 4, 30, tzinfo=UTC)
    rows = list(OpenPanelHook().iter_events(None, *window, profile_id="user_3", page_size=5))
    assert rows == truth(sandbox_reset, window, profile_id="user_3")
    anonymous = [row for row in rows if row["profileId"] != "user_3"]
    assert anonymous and all(row["profileId"] == row["deviceId"] for row in anonymous)
    # meta.pages counts only user_3's events: the hook reads on until a short page instead.
    last = calls(sandbox_reset)[-1]
    assert len(calls(sandbox_reset)) == len(rows) // 5 + 1 and last["status"] == 200


def test_a_profile_count_that_does_not_match_fails(scripted: ScriptedServer, monkeypatch):
    conn = {"conn_type": "openpanel", "host": scripted.url, "login": "id", "password": "secret"}
    monkeypatch.setenv("AIRFLOW_CONN_OPENPANEL_SCRIPTED", json.dumps(conn))
    data = [{"id": "a", "createdAt": "2024-04-15T10:00:00.000Z", "profileId": "u"}]
    scripted.queue(Reply(200, {"meta": {"totalCount": 2, "pages": 1, "current": 1}, "data": data}))
    mismatch = r"reported 2 rows but 1 distinct rows arrived for profile 'u'"
    with pytest.raises(ExportIntegrityError, match=mismatch):
        list(OpenPanelHook("openpanel_scripted").iter_events("p", *DAY, profile_id="u"))


# -- live traffic ---------------------------------------------------------------------------------


#: A live test does not start this close before a UTC midnight (it would end in the next day,
#: whose traffic no longer lands on the listing it reads) nor this soon after one (the test's and
#: the hook's readings of the clock must agree on the day).
MIDNIGHT_BEFORE, MIDNIGHT_AFTER = dt.timedelta(seconds=15), dt.timedelta(seconds=2)


def _now_clear_of_midnight() -> dt.datetime:
    """Now, after waiting out (17 s at most) the moments right around a UTC midnight."""
    now = dt.datetime.now(UTC)
    midnight = (now + MIDNIGHT_BEFORE).replace(hour=0, minute=0, second=0, microsecond=0)
    if now < midnight + MIDNIGHT_AFTER:
        time.sleep((midnight + MIDNIGHT_AFTER - now).total_seconds())
        now = dt.datetime.now(UTC)
    return now


def _past_hour_up_to_now(sandbox: SandboxServer, rows: int) -> tuple[dt.datetime, dt.datetime]:
    """The hour up to now, with the day's volume set so it holds about ``rows`` events.

    It ends now, so its days always include today and live traffic lands on top of the listing
    the hook reads; just after midnight it starts yesterday (a two-day listing). An hour always,
    so its volume does not depend on the time of day either (CI at 00:03 once exported a
    two-minute window of today holding too few events to page).
    """
    end = _now_clear_of_midnight().replace(microsecond=0)
    per_day = rows * 24
    sandbox.config.update({"openpanel_events_per_day": max(per_day, sandbox.config.openpanel_events_per_day)})
    return end - dt.timedelta(hours=1), end


def test_an_hourly_export_of_today_is_exact_under_live_traffic(sandbox_reset):
    sandbox_reset.config.update(
        {
            "openpanel_live_events_per_second": 100.0,
            "latency_ms": {"openpanel": 30},
        }
    )
    window = _past_hour_up_to_now(sandbox_reset, rows=1_000)
    rows = list(OpenPanelHook().iter_events(None, *window, page_size=50, max_concurrency=4))
    assert rows == truth(sandbox_reset, window)
    assert len({row["id"] for row in rows}) == len(rows) > 100
    pages = calls(sandbox_reset)
    # Read one after another (live mode) while several events arrived between any two pages,
    # so every page started some rows below where the previous one ended.
    assert all(a["ended"] <= b["started"] for a, b in zip(pages, pages[1:], strict=False))
    gaps = [b["started"] - a["started"] for a, b in zip(pages, pages[1:], strict=False)]
    assert len(pages) > 10 and min(gaps) * 100.0 >= 2


def test_a_window_not_over_yet_is_refused(sandbox_reset):
    """Arrivals go on top of the listing, above page 1: a window still open cannot be complete."""
    now = dt.datetime.now(UTC)
    with pytest.raises(ValueError, match=r"is in the future: events of the window are still arriving"):
        list(OpenPanelHook().iter_events(None, now - dt.timedelta(hours=1), now + dt.timedelta(minutes=5)))
    assert calls(sandbox_reset) == []


def test_a_late_event_landing_inside_the_window_fails_loudly(scripted: ScriptedServer, monkeypatch):
    """A back-dated event (late flush, client clock) above rows already read cannot be placed."""
    conn = {"conn_type": "openpanel", "host": scripted.url, "login": "id", "password": "secret"}
    monkeypatch.setenv("AIRFLOW_CONN_OPENPANEL_SCRIPTED", json.dumps(conn))
    # Five minutes up to now: its days include today (a live listing) at any time of day.
    end = _now_clear_of_midnight().replace(microsecond=0)
    start = end - dt.timedelta(minutes=5)

    def row(key: str, minute: int) -> dict:
        return {
            "id": key,
            "createdAt": (start + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }

    def page(number: int, total: int, *rows: dict) -> Reply:
        return Reply(200, {"meta": {"totalCount": total, "pages": 2, "current": number}, "data": list(rows)})

    scripted.queue(
        page(1, 4, row("d", 4)),  # the one-row read of the count
        page(1, 4, row("d", 4), row("c", 3)),  # the window ends now: the page holding its end is the first
        page(2, 5, row("late", 4), row("b", 2)),
    )
    with pytest.raises(ExportIntegrityError, match=r"'late' created at .* appeared above rows already read"):
        list(OpenPanelHook("openpanel_scripted").iter_events("p", start, end, page_size=2))
    pages = [parse_qs(urlsplit(request["path"]).query)["page"] for request in scripted.requests]
    assert pages == [["1"], ["1"], ["2"]]


def test_new_rows_faster_than_pages_fail_instead_of_spinning(sandbox_reset):
    sandbox_reset.config.update({"openpanel_live_events_per_second": 400.0, "latency_ms": {"openpanel": 30}})
    window = _past_hour_up_to_now(sandbox_reset, rows=200)
    with pytest.raises(ExportIntegrityError, match=r"new rows arrive faster than pages can be read"):
        list(OpenPanelHook().iter_events(None, *window, page_size=5))


def test_live_mode_stops_once_pages_are_older_than_the_window(sandbox_reset):
    window = _past_hour_up_to_now(sandbox_reset, rows=1_000)
    rows = list(OpenPanelHook().iter_events(None, *window, page_size=100))
    assert rows == truth(sandbox_reset, window)
    newer = len(truth(sandbox_reset, (window[1], dt.datetime.now(UTC) + dt.timedelta(minutes=1))))
    # Pages: the newer rows, the window's rows, and the one page crossing its start.
    assert len(calls(sandbox_reset)) <= (newer + len(rows)) // 100 + 2


# -- connection test ------------------------------------------------------------------------------


def test_test_button_for_a_read_client_without_a_project(sandbox_reset, monkeypatch):
    creds = CREDENTIALS["openpanel"]
    login = {"login": creds["read_client_id"], "password": creds["read_client_secret"]}
    connection(monkeypatch, sandbox_reset, "op_read", **login)
    assert OpenPanelHook("op_read").test_connection()[0] is True
    connection(monkeypatch, sandbox_reset, "op_read_other", **login, extra={"project_id": "proj-app"})
    ok, message = OpenPanelHook("op_read_other").test_connection()
    assert not ok and message == (
        "OpenPanel GET /export/events failed (HTTP 403): You do not have access to this project"
    )
    root = {"login": creds["client_id"], "password": creds["client_secret"]}
    connection(monkeypatch, sandbox_reset, "op_root", **root, extra={"project_id": None})
    assert OpenPanelHook("op_root").test_connection()[0] is True
    connection(monkeypatch, sandbox_reset, "op_bad", login=creds["client_id"], password="wrong")
    assert OpenPanelHook("op_bad").test_connection() == (
        False,
        "OpenPanel GET /export/events failed (HTTP 401): Export: Invalid client secret",
    )


# -- charts ---------------------------------------------------------------------------------------


def test_a_daily_chart_has_the_whole_day(sandbox_reset):
    chart = OpenPanelHook().get_chart(None, [{"name": "screen_view"}], start=DAY[0], end=DAY[1])
    rows = list(chart_rows(chart, [], previous=False, window=DAY))
    want = openpanel_chart(sandbox_reset.config, "proj-web", [_event("screen_view")], [], "day", *DAY, False)
    assert [(row["date"], row["count"]) for row in rows] == [
        ("2024-04-15T00:00:00+00:00", want["series"][0]["data"][0]["count"])
    ]
    assert rows[0]["count"] > 500  # a date-only endDate (midnight) would give an empty chart
    query = parse_qs(calls(sandbox_reset)[0]["query"])
    assert (query["startDate"], query["endDate"]) == (["2024-04-15T00:00:00Z"], ["2024-04-16T00:00:00Z"])


def test_a_daily_chart_in_a_new_york_organization(sandbox_reset, monkeypatch):
    sandbox_reset.config.update({"openpanel_timezone": "America/New_York"})
    creds = CREDENTIALS["openpanel"]
    connection(
        monkeypatch,
        sandbox_reset,
        "op_ny",
        login=creds["client_id"],
        password=creds["client_secret"],
        extra={"project_id": "proj-web", "timezone": "America/New_York"},
    )
    hook = OpenPanelHook("op_ny")
    window = dt.datetime(2024, 4, 15, tzinfo=NEW_YORK), dt.datetime(2024, 4, 16, tzinfo=NEW_YORK)
    chart = hook.get_chart(
        None, [{"name": "screen_view"}], [{"name": "referrer"}], start=window[0], end=window[1]
    )
    rows = list(chart_rows(chart, [{"name": "referrer"}], False, window, hook.timezone))
    want = openpanel_chart(
        sandbox_reset.config,
        "proj-web",
        [_event("screen_view")],
        [{"name": "referrer"}],
        "day",
        *window,
        False,
        "America/New_York",
    )
    assert [(row["breakdown_referrer"], row["date"], row["count"]) for row in rows] == [
        (
            series["event"].get("breakdowns", {}).get("referrer", ""),
            "2024-04-15T00:00:00-04:00",
            series["data"][0]["count"],
        )
        for series in want["series"]
    ]
    assert "" in {row["breakdown_referrer"] for row in rows}  # direct traffic: dropped from names


def test_ambiguous_breakdown_labels_fail_instead_of_shifting():
    dims = [{"name": "referrer"}, {"name": "country"}]
    full = {
        "id": "s",
        "names": ["e", "https://g/", "US"],
        "event": {"breakdowns": {"referrer": "https://g/", "country": "US"}},
    }
    assert breakdown_labels(full, dims) == {"breakdown_referrer": "https://g/", "breakdown_country": "US"}
    assert breakdown_labels({"names": ["e"]}, dims) == {"breakdown_referrer": "", "breakdown_country": ""}
    with pytest.raises(ExportIntegrityError, match="which breakdown is empty cannot be told"):
        breakdown_labels({"id": "s", "names": ["e", "US"], "event": {"breakdowns": {"referrer": "US"}}}, dims)


def _event(name: str) -> dict:
    return {"name": name, "segment": "event", "property": None, "filters": []}
