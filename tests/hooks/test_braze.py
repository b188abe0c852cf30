"""BrazeHook against the sandbox over real sockets."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_analytics_export.exceptions import AuthenticationError, ExportIntegrityError
from airflow_provider_analytics_export.hooks.braze import BrazeHook
from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.data import braze_series, braze_window
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc


def _braze_requests(sandbox: SandboxServer) -> int:
    return len([entry for entry in sandbox.requests_log if entry["api"] == "braze"])


@pytest.mark.parametrize(
    ("unit", "ending_at", "app_id", "segment_id"),
    [
        ("day", dt.datetime(2024, 5, 20, 13, 5, tzinfo=UTC), None, None),
        ("hour", dt.datetime(2024, 5, 20, 13, 5, tzinfo=UTC), "app-1", "seg-9"),
    ],
)
def test_get_sessions_series_is_what_the_api_serves(
    sandbox_reset: SandboxServer,
    unit: str,
    ending_at: dt.datetime,
    app_id: str | None,
    segment_id: str | None,
) -> None:
    series = BrazeHook().get_sessions_series(14, unit, ending_at, app_id, segment_id)

    assert series == braze_series(sandbox_reset.config, 14, unit, ending_at, app_id, segment_id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"length": 0}, "length=0 is out of range: use an integer from 1 to 100"),
        ({"length": 101}, "length=101 is out of range"),
        ({"length": "14"}, "length='14' is out of range"),
        ({"length": 7, "unit": "week"}, "unit='week' is not supported; use one of: day, hour."),
    ],
)
def test_bad_length_or_unit_fails_before_any_request(
    sandbox_reset: SandboxServer, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BrazeHook().get_sessions_series(**kwargs)  # type: ignore[arg-type]
    assert _braze_requests(sandbox_reset) == 0


def test_250_day_window_is_three_requests_covering_each_day_once(sandbox_reset: SandboxServer) -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end = start + dt.timedelta(days=250)

    pages = list(BrazeHook().iter_sessions_series(start, end))

    assert [len(page) for page in pages] == [100, 100, 50]
    assert _braze_requests(sandbox_reset) == 3
    points = [point for page in pages for point in page]
    assert points == braze_window(sandbox_reset.config, start, end, "day")


@pytest.mark.parametrize(
    ("unit", "start", "end", "message"),
    [
        # Was widened to [10:00, 15:00) and trimmed: the 14:00 bucket was written before it was complete.
        (
            "hour",
            dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC),
            dt.datetime(2024, 3, 1, 14, tzinfo=UTC),
            "start=2024-03-01T10:30:00+00:00 does not fall on a unit='hour' boundary, so a hour bucket "
            "would straddle the window and be written partial",
        ),
        # unit=day on an hourly run: the first run of the day would write a partial day.
        (
            "day",
            dt.datetime(2024, 3, 1, 0, tzinfo=UTC),
            dt.datetime(2024, 3, 1, 1, tzinfo=UTC),
            "end=2024-03-01T01:00:00+00:00 does not fall on a unit='day' boundary",
        ),
    ],
)
def test_a_window_cutting_a_bucket_is_refused_before_any_request(
    sandbox_reset: SandboxServer, unit: str, start: dt.datetime, end: dt.datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        next(BrazeHook().iter_sessions_series(start, end, unit))
    assert _braze_requests(sandbox_reset) == 0


def test_utc_midnights_are_not_whole_days_of_a_new_york_workspace(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, sandbox_reset, "America/New_York")
    day = dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="does not fall on a unit='day' boundary"):
        next(BrazeHook("braze_zoned").iter_sessions_series(day, day + dt.timedelta(days=1)))


def test_iter_rejects_a_bad_unit_before_any_request(sandbox_reset: SandboxServer) -> None:
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="unit='minute' is not supported; use one of: day, hour"):
        next(BrazeHook().iter_sessions_series(start, start + dt.timedelta(days=1), "minute"))
    assert _braze_requests(sandbox_reset) == 0


def test_wrong_key_surfaces_the_api_message(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "braze", "host": sandbox_reset.url, "password": "not-the-key"}
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_WRONG", json.dumps(conn))

    with pytest.raises(
        AuthenticationError, match=r"Braze GET /sessions/data_series failed \(HTTP 401\): Invalid"
    ):
        BrazeHook("braze_wrong").get_sessions_series(1)


# -- every reading of what the page leaves open ----------------------------------------------


def _connect(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, timezone: object) -> None:
    """Connection ``braze_zoned``: the sandbox, with the time zone extra as Airflow may store it."""
    conn = {
        "conn_type": "braze",
        "host": sandbox.url,
        "password": CREDENTIALS["braze"]["api_key"],
        "extra": {"timezone": timezone, "max_attempts": 8},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_ZONED", json.dumps(conn))


ZONES = [
    # (sandbox company zone, the extra as stored: the UI form saves an untouched field as null)
    pytest.param("UTC", None, id="utc-extra-null"),
    pytest.param("America/New_York", "America/New_York", id="new-york"),
    pytest.param("Asia/Kolkata", " Asia/Kolkata ", id="kolkata-half-hour"),
]
FAULTS = {"rate": 0.3, "seed": 7, "kinds": ["500", "503", "429", "drop", "truncate"]}


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
@pytest.mark.parametrize("time_format", ["z", "offset", "naive"])
@pytest.mark.parametrize(("zone", "extra"), ZONES)
def test_every_bucket_once_under_each_time_format_and_zone(
    sandbox_reset: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    zone: str,
    extra: str | None,
    time_format: str,
    faults: bool,
) -> None:
    """Hours across a DST change and 250 local days, each as two consecutive runs."""
    sandbox_reset.config.update(
        {"braze_timezone": zone, "braze_time_format": time_format, **({"faults": FAULTS} if faults else {})}
    )
    _connect(monkeypatch, sandbox_reset, extra)
    hook = BrazeHook("braze_zoned")
    tz = ZoneInfo(zone)
    hour0 = dt.datetime(2024, 3, 9, 12, tzinfo=tz).astimezone(UTC)  # New York springs forward on 03-10
    day0, day_cut, day_end = (
        dt.datetime(2024, month, day, tzinfo=tz).astimezone(UTC) for month, day in ((1, 1), (5, 1), (9, 7))
    )
    runs = [
        ("hour", hour0, hour0 + dt.timedelta(hours=30)),
        ("hour", hour0 + dt.timedelta(hours=30), hour0 + dt.timedelta(hours=150)),
        ("day", day0, day_cut),
        ("day", day_cut, day_end),
    ]

    for unit, start, end in runs:
        points = [point for page in hook.iter_sessions_series(start, end, unit, "app-1") for point in page]
        assert points == braze_window(sandbox_reset.config, start, end, unit, "app-1"), (unit, start)
    if faults:
        assert {entry["fault"] for entry in sandbox_reset.requests_log} > {None}


def test_a_wrong_workspace_zone_fails_on_naive_hours_instead_of_shifting_them(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox_reset.config.update({"braze_timezone": "America/New_York", "braze_time_format": "naive"})
    _connect(monkeypatch, sandbox_reset, None)  # left at UTC
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ExportIntegrityError, match=r"time='2024-02-29T19:00:00'.*timezone extra"):
        list(BrazeHook("braze_zoned").iter_sessions_series(start, start + dt.timedelta(hours=3), "hour"))


def test_the_pool_is_paced_by_its_headers_and_every_bucket_arrives(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 requests per 2-second window: the hook pauses on Remaining=0 until the Reset it was told."""
    sandbox_reset.config.update({"braze_rate_limit": 2, "braze_rate_window": 2.0})
    _connect(monkeypatch, sandbox_reset, None)
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end = start + dt.timedelta(hours=500)  # five requests
    hook = BrazeHook("braze_zoned")

    points = [point for page in hook.iter_sessions_series(start, end, "hour") for point in page]

    assert points == braze_window(sandbox_reset.config, start, end, "hour")
    calls = [entry for entry in sandbox_reset.requests_log if entry["api"] == "braze"]
    assert [entry["status"] for entry in calls] == [200] * 5  # paced, never refused
    windows = [int(entry["wall"] // 2) for entry in calls]
    assert max(windows.count(window) for window in windows) <= 2


def test_a_429_with_only_the_reset_header_waits_until_the_reset(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Retry-After: the wait comes from X-RateLimit-Reset (UTC epoch seconds), not blind backoff."""
    conn = {"conn_type": "braze", "host": scripted.url, "password": "key"}
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_SCRIPTED", json.dumps(conn))
    sent = time.time()
    reset = int(sent) + 3
    limited = {"X-RateLimit-Limit": "250000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    ok = {"message": "success", "data": [{"time": "2024-03-01", "sessions": 5}]}
    scripted.queue(Reply(429, {"message": "API rate limit exceeded", "errors": []}, limited), Reply(200, ok))

    series = BrazeHook("braze_scripted").get_sessions_series(1, "day", "2024-03-01T12:00:00Z")

    assert series == ok["data"]
    first, second = (request["time"] for request in scripted.requests)
    # Blind backoff after one attempt waits at most 0.5 s; the reset is 2-3 s away.
    assert second - first >= reset - sent - 0.3 and second - first > 1.5


def test_a_bad_workspace_zone_fails_before_any_request_naming_the_extra(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, sandbox_reset, "Mars/Olympus_Mons")
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(
        ValueError, match=r"Connection 'braze_zoned' \(Braze\): extra 'timezone'='Mars/Olympus_Mons'"
    ):
        next(BrazeHook("braze_zoned").iter_sessions_series(start, start + dt.timedelta(days=1)))
    assert _braze_requests(sandbox_reset) == 0


def test_a_pool_used_up_by_another_client_is_waited_out_not_backed_off(
    sandbox_reset: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client of the workspace spent the window: our first call gets the sandbox's 429 (reset
    headers only) and the retry comes after X-RateLimit-Reset, with max_attempts=2 leaving no slack."""
    import requests

    sandbox_reset.config.update({"braze_rate_limit": 1, "braze_rate_window": 3.0})
    headers = {"Authorization": f"Bearer {CREDENTIALS['braze']['api_key']}"}
    time.sleep(3.0 - time.time() % 3.0)  # start of a window, so ours surely lands in the same one
    other = requests.get(f"{sandbox_reset.url}/sessions/data_series", params={"length": 1}, headers=headers)
    assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "0"
    reset = int(other.headers["X-RateLimit-Reset"])
    conn = {"conn_type": "braze", "host": sandbox_reset.url, "password": CREDENTIALS["braze"]["api_key"]}
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_OTHER", json.dumps(conn))

    series = BrazeHook("braze_other", max_attempts=2).get_sessions_series(3, "day", "2024-03-01T12:00:00Z")

    assert series == braze_series(sandbox_reset.config, 3, "day", dt.datetime(2024, 3, 1, 12, tzinfo=UTC))
    calls = [entry for entry in sandbox_reset.requests_log if entry["api"] == "braze"]
    assert [entry["status"] for entry in calls] == [200, 429, 200]
    assert calls[2]["wall"] >= reset - 0.05
