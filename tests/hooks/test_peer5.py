"""Peer5Hook against the sandbox over real sockets; the clock is pinned on both sides."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_analytics_export.hooks import peer5
from airflow_provider_analytics_export.hooks.peer5 import Peer5Hook
from airflow_provider_analytics_export.sandbox import SandboxServer
from airflow_provider_analytics_export.sandbox.data import peer5_csv, peer5_rows

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def pinned(sandbox_reset: SandboxServer, mocker: Any) -> Iterator[SandboxServer]:
    """Hook and sandbox agree that it is NOW (the recency limits depend on it)."""
    mocker.patch.object(peer5, "now", return_value=NOW)
    sandbox_reset.config.now = NOW.timestamp()
    yield sandbox_reset


def _requests(sandbox: SandboxServer) -> int:
    return len([entry for entry in sandbox.requests_log if entry["api"] == "peer5"])


def test_20_hours_of_1m_is_four_allowed_chunks_with_every_minute_once(pinned: SandboxServer) -> None:
    start = NOW - 2 * dt.timedelta(days=1)
    end = start + 20 * HOUR

    pages = list(Peer5Hook().export(start, end, "1m", ["http", "p2p"]))

    assert [len(page) for page in pages] == [360, 360, 360, 120]
    assert _requests(pinned) == 4
    rows = [row for page in pages for row in page]
    assert rows == peer5_rows(pinned.config, _ms(start), _ms(end), "1m", ["http", "p2p"])
    assert [row["timestamp"] for row in rows] == list(range(_ms(start), _ms(end), 60_000))


def test_dimension_split_gives_one_row_per_timestamp_and_value(pinned: SandboxServer) -> None:
    start = NOW - 3 * HOUR
    filters = {"country.code": ["US", "DE"]}
    dims = ["browser.name", "country.code"]

    rows = [
        row for page in Peer5Hook().export(start, NOW, "30m", ["sessions"], filters, dims) for row in page
    ]

    assert rows == peer5_rows(pinned.config, _ms(start), _ms(NOW), "30m", ["sessions"], filters, dims)
    keys = {(row["timestamp"], row["browser.name"], row["country.code"]) for row in rows}
    assert len(keys) == len(rows) == 6 * 4 * 2


def test_csv_bytes_pass_through_with_one_header(pinned: SandboxServer) -> None:
    start = NOW - 13 * HOUR

    data = b"".join(Peer5Hook().export(start, NOW, "5m", ["http"], dimensions=["os.name"], output="csv"))

    rows = peer5_rows(pinned.config, _ms(start), _ms(NOW), "5m", ["http"], None, ["os.name"])
    assert data.decode() == peer5_csv(rows, ["timestamp", "os.name", "http"])
    assert _requests(pinned) == 3  # 6 h + 6 h + 1 h


def test_unaligned_window_is_widened_and_trimmed(pinned: SandboxServer) -> None:
    start = NOW - 2 * HOUR + dt.timedelta(minutes=7)
    end = NOW - dt.timedelta(minutes=20)

    rows = [row for page in Peer5Hook().export(start, end, "30m", ["p2p"]) for row in page]

    # start 10:07, end 11:40: the request is widened to [10:00, 12:00) and the 10:00 bucket dropped.
    expected = [
        dt.datetime(2024, 6, 15, 10, 30),
        dt.datetime(2024, 6, 15, 11),
        dt.datetime(2024, 6, 15, 11, 30),
    ]
    assert [row["timestamp"] for row in rows] == [_ms(moment.replace(tzinfo=UTC)) for moment in expected]
    assert _requests(pinned) == 1


def test_10_days_of_10m_is_split_into_7_day_chunks(pinned: SandboxServer) -> None:
    start = NOW - dt.timedelta(days=10)

    rows = [row for page in Peer5Hook().export(start, NOW, "10m", ["sessions"]) for row in page]

    assert len(rows) == 10 * 24 * 6
    assert _requests(pinned) == 2


@pytest.mark.parametrize(
    ("interval", "age", "message"),
    [
        (
            "1m",
            dt.timedelta(days=8),
            "Peer5 serves interval='1m' only within the last 7 days, but start=2024-06-07T12:00:00+00:00 is "
            "before 2024-06-08T12:00:00+00:00; use a coarser interval: 10m, 30m, 1h, 3h, 12h, 1d, 7d, 14d.",
        ),
        ("5m", dt.timedelta(days=15), "use a coarser interval: 1d, 7d, 14d."),
        ("30m", dt.timedelta(days=15), "only within the last 14 days"),
        ("12h", dt.timedelta(days=20), "use a coarser interval: 1d, 7d, 14d."),
    ],
)
def test_windows_the_api_never_serves_fail_before_any_request(
    pinned: SandboxServer, interval: str, age: dt.timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Peer5Hook().export(NOW - age, NOW - age + HOUR, interval, ["http"])
    assert _requests(pinned) == 0


def test_1d_has_no_recency_limit(pinned: SandboxServer) -> None:
    start = NOW.replace(hour=0) - dt.timedelta(days=400)
    rows = [
        row
        for page in Peer5Hook().export(start, start + dt.timedelta(days=3), "1d", ["http"])
        for row in page
    ]
    assert len(rows) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"interval": "2h"},
            "interval has unknown value '2h'; allowed values: 1m, 5m, 10m, 30m, 1h, 3h, 12h, 1d",
        ),
        (
            {"metrics": ["http", "bytes"]},
            "metrics has unknown value 'bytes'; allowed values: http, p2p, played",
        ),
        ({"metrics": []}, "metrics=[] must be a non-empty list of: http, p2p, played, rebuffered, sessions."),
        ({"metrics": "http"}, "metrics='http' must be a non-empty list of"),
        (
            {"filters": {"device.type": ["tv"]}},
            "filters has unknown value 'device.type'; allowed values: browser.",
        ),
        ({"filters": {"os.name": 3}}, "filters['os.name']=3 must be a string or a list of strings."),
        ({"dimensions": ["region"]}, "dimensions has unknown value 'region'; allowed values: browser.name"),
        ({"dimensions": "os.name"}, "dimensions='os.name' must be a list of"),
        (
            {"dimensions": ["os.name", "city.name", "isp.name"]},
            "dimensions=['os.name', 'city.name', 'isp.name']: Peer5 splits by at most 2 distinct dimensions",
        ),
        ({"dimensions": ["os.name", "os.name"]}, "at most 2 distinct dimensions per query"),
        ({"output": "xml"}, "output has unknown value 'xml'; allowed values: json, csv."),
    ],
)
def test_invalid_queries_are_rejected_before_any_request(
    pinned: SandboxServer, kwargs: dict[str, Any], message: str
) -> None:
    query: dict[str, Any] = {"interval": "1h", "metrics": ["http"], **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        Peer5Hook().export(NOW - HOUR, NOW, **query)
    assert _requests(pinned) == 0


def test_csv_needs_an_aligned_window(pinned: SandboxServer) -> None:
    with pytest.raises(
        ValueError, match=r"output='csv' passes Peer5's bytes through unfiltered.*use output='json'"
    ):
        Peer5Hook().export(NOW - HOUR + dt.timedelta(seconds=30), NOW, "1m", ["http"], output="csv")
