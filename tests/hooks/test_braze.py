"""BrazeHook against the sandbox over real sockets."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from airflow_provider_analytics_export.exceptions import AuthenticationError
from airflow_provider_analytics_export.hooks.braze import BrazeHook
from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import braze_series

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
        ({"length": 0}, "length=0 is out of range; Braze series take an integer from 1 to 100"),
        ({"length": 101}, "length=101 is out of range"),
        ({"length": "14"}, "length='14' is out of range"),
        ({"length": 7, "unit": "week"}, "unit='week' is not a Braze series unit; use one of day, hour."),
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
    assert points == braze_series(sandbox_reset.config, 250, "day", end - dt.timedelta(days=1))


def test_unaligned_window_keeps_only_buckets_starting_inside_it(sandbox_reset: SandboxServer) -> None:
    start = dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
    end = dt.datetime(2024, 3, 1, 14, 30, tzinfo=UTC)

    points = [point for page in BrazeHook().iter_sessions_series(start, end, "hour") for point in page]

    assert [point["time"] for point in points] == [f"2024-03-01T{hour}:00:00Z" for hour in (11, 12, 13, 14)]
    # Widened to [10:00, 15:00): one request, the 10:00 bucket fetched and dropped.
    assert _braze_requests(sandbox_reset) == 1


def test_iter_rejects_a_bad_unit_before_any_request(sandbox_reset: SandboxServer) -> None:
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="unit='minute' is not a Braze series unit; use one of day, hour"):
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
