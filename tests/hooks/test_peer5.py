"""Peer5Hook against the sandbox over real sockets; the clock is pinned on both sides."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks import peer5
from airflow_provider_analytics_export.hooks.peer5 import Peer5Hook, Peer5Query
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.peer5 import peer5_csv, peer5_rows
from tests import scripted_peer5
from tests.scripted_server import Reply

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

    pages = list(Peer5Hook().export_rows(start, end, Peer5Query("1m", ["http", "p2p"])))

    assert [len(page) for page in pages] == [360, 360, 360, 120]
    assert _requests(pinned) == 4
    rows = [row for page in pages for row in page]
    assert rows == peer5_rows(pinned.config, _ms(start), _ms(end), "1m", ["http", "p2p"])
    assert [row["timestamp"] for row in rows] == list(range(_ms(start), _ms(end), 60_000))


def test_dimension_split_gives_one_row_per_timestamp_and_value(pinned: SandboxServer) -> None:
    start = NOW - 3 * HOUR
    filters = {"country.code": ["US", "DE"]}
    dims = ["browser.name", "country.code"]

    pages = Peer5Hook().export_rows(start, NOW, Peer5Query("30m", ["sessions"], filters, dims))
    rows = [row for page in pages for row in page]

    assert rows == peer5_rows(pinned.config, _ms(start), _ms(NOW), "30m", ["sessions"], filters, dims)
    keys = {(row["timestamp"], row["browser.name"], row["country.code"]) for row in rows}
    assert len(keys) == len(rows) == 6 * 4 * 2


def test_csv_bytes_pass_through_with_one_header(pinned: SandboxServer) -> None:
    start = NOW - 13 * HOUR

    data = b"".join(Peer5Hook().export_csv(start, NOW, Peer5Query("5m", ["http"], dimensions=["os.name"])))

    rows = peer5_rows(pinned.config, _ms(start), _ms(NOW), "5m", ["http"], None, ["os.name"])
    assert data.decode() == peer5_csv(rows, ["timestamp", "os.name", "http"])
    assert _requests(pinned) == 3  # 6 h + 6 h + 1 h


@pytest.mark.parametrize(
    ("start", "end", "interval", "message"),
    [
        # Was widened to [10:00, 12:00) and trimmed, which wrote the 11:30 bucket before it was complete.
        (
            NOW - 2 * HOUR + dt.timedelta(minutes=7),
            NOW - dt.timedelta(minutes=20),
            "30m",
            "start=2024-06-15T10:07:00+00:00 does not fall on a interval='30m' boundary, so a 30m bucket "
            "would straddle the window and be written partial: align the window (or schedule) to the 30m, "
            "or choose a finer interval.",
        ),
        # A day bucket on an hourly run: the first run of the day would write a partial day.
        (NOW - HOUR, NOW, "1d", "start=2024-06-15T11:00:00+00:00 does not fall on a interval='1d' boundary"),
        (NOW - 2 * HOUR, NOW - dt.timedelta(seconds=30), "1m", "end=2024-06-15T11:59:30+00:00 does not fall"),
    ],
)
def test_a_window_cutting_a_bucket_is_refused_before_any_request(
    pinned: SandboxServer, start: dt.datetime, end: dt.datetime, interval: str, message: str
) -> None:
    for export in (Peer5Hook().export_rows, Peer5Hook().export_csv):
        with pytest.raises(ValueError, match=re.escape(message)):
            export(start, end, Peer5Query(interval, ["p2p"]))
    assert _requests(pinned) == 0


def test_10_days_of_10m_is_split_into_7_day_chunks(pinned: SandboxServer) -> None:
    start = NOW - dt.timedelta(days=10)

    rows = [
        row for page in Peer5Hook().export_rows(start, NOW, Peer5Query("10m", ["sessions"])) for row in page
    ]

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
        # One whole bucket (at least an hour): only the recency limit is wrong with this window.
        end = NOW - age + max(HOUR, peer5.INTERVALS[interval])
        Peer5Hook().export_rows(NOW - age, end, Peer5Query(interval, ["http"]))
    assert _requests(pinned) == 0


def test_1d_has_no_recency_limit(pinned: SandboxServer) -> None:
    start = NOW.replace(hour=0) - dt.timedelta(days=400)
    rows = [
        row
        for page in Peer5Hook().export_rows(start, start + dt.timedelta(days=3), Peer5Query("1d", ["http"]))
        for row in page
    ]
    assert len(rows) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"interval": "2h"},
            "interval='2h' is not supported; use one of: 1m, 5m, 10m, 30m, 1h, 3h, 12h, 1d",
        ),
        (
            {"metrics": ["http", "bytes"]},
            "metrics=['http', 'bytes'] has unknown value(s) 'bytes'; allowed: http, p2p, played",
        ),
        ({"metrics": []}, "metrics=[] must be a non-empty list of: http, p2p, played, rebuffered, sessions."),
        ({"metrics": "http"}, "metrics='http' must be a non-empty list of"),
        (
            {"filters": {"device.type": ["tv"]}},
            "filters={'device.type': ['tv']} has unknown value(s) 'device.type'; allowed: browser.",
        ),
        ({"filters": {"os.name": 3}}, "filters['os.name']=3 must be a string or a list of strings."),
        (
            {"dimensions": ["region"]},
            "dimensions=['region'] has unknown value(s) 'region'; allowed: browser.name",
        ),
        ({"dimensions": "os.name"}, "dimensions='os.name' must be a list of"),
        (
            {"dimensions": ["os.name", "city.name", "isp.name"]},
            "dimensions=['os.name', 'city.name', 'isp.name']: Peer5 splits by at most 2 distinct dimensions",
        ),
        ({"dimensions": ["os.name", "os.name"]}, "at most 2 distinct dimensions per query"),
    ],
)
def test_invalid_queries_are_rejected_before_any_request(
    pinned: SandboxServer, kwargs: dict[str, Any], message: str
) -> None:
    query: dict[str, Any] = {"interval": "1h", "metrics": ["http"], **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        Peer5Query(**query)
    assert _requests(pinned) == 0


# -- every reading of what the page leaves open ----------------------------------------------


READINGS = [
    pytest.param({}, id="to-exclusive"),
    pytest.param({"peer5_to_inclusive": True}, id="to-inclusive"),
    pytest.param({"peer5_to_inclusive": True, "peer5_sparse": True}, id="to-inclusive-sparse"),
    pytest.param({"peer5_sparse": True}, id="to-exclusive-sparse"),
]
FAULTS = {"rate": 0.3, "seed": 3, "kinds": ["500", "503", "429", "drop", "truncate"]}


def _csv_of(sandbox: SandboxServer, start: dt.datetime, end: dt.datetime, dims: list[str]) -> str:
    rows = peer5_rows(sandbox.config, _ms(start), _ms(end), "5m", ["http", "p2p"], None, dims)
    return peer5_csv(rows, ["timestamp", *dims, "http", "p2p"])


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
@pytest.mark.parametrize("reading", READINGS)
def test_each_bucket_once_in_json_and_csv_within_a_file_and_across_runs(
    pinned: SandboxServer, reading: dict[str, Any], faults: bool
) -> None:
    """13 hours at 5m (three chunks) as two consecutive runs: every bucket once, nothing else."""
    pinned.config.update({**reading, **({"faults": FAULTS} if faults else {})})
    dims = ["browser.name"]
    start, middle, end = NOW - 13 * HOUR, NOW - 6 * HOUR, NOW
    hook = Peer5Hook()
    query = Peer5Query("5m", ["http", "p2p"], dimensions=dims)

    json_rows = [
        row
        for a, b in ((start, middle), (middle, end))
        for page in hook.export_rows(a, b, query)
        for row in page
    ]
    csv_runs = [b"".join(hook.export_csv(a, b, query)).decode() for a, b in ((start, middle), (middle, end))]

    truth = peer5_rows(pinned.config, _ms(start), _ms(end), "5m", ["http", "p2p"], None, dims)
    assert json_rows == truth
    assert len({(row["timestamp"], row["browser.name"]) for row in json_rows}) == 13 * 12 * 4
    assert csv_runs == [_csv_of(pinned, start, middle, dims), _csv_of(pinned, middle, end, dims)]
    if faults:
        assert {entry["fault"] for entry in pinned.requests_log} > {None}


@pytest.mark.parametrize("output", ["json", "csv"])
def test_a_row_outside_the_requested_range_still_fails(scripted: Any, monkeypatch: Any, output: str) -> None:
    """Only the bucket at `to` is the open question; a bucket after it means the API shifted the range."""
    hook = Peer5Hook(scripted_peer5.connect(scripted, monkeypatch, NOW))
    late = _ms(NOW) + 3_600_000
    for stamp, message in (
        (late, f"timestamp={late} for the requested range"),
        ("soon", "'soon' is not epoch"),
    ):
        if output == "json":
            reply = Reply(200, {"error": False, "data": [{"timestamp": stamp, "http": 1}]})
        else:
            reply = scripted_peer5.csv_reply(f'"timestamp","http"\n{stamp},1\n')
        scripted.queue(reply)
        with pytest.raises(ExportIntegrityError, match=message):
            export = hook.export_rows if output == "json" else hook.export_csv
            list(export(NOW - HOUR, NOW, Peer5Query("1h", ["http"])))


@pytest.mark.real_backoff  # the backoff itself must outlast the 1 s window
def test_per_minute_limit_is_backed_off_and_every_row_arrives(pinned: SandboxServer) -> None:
    """Over the limit every request gets a 429 (no Retry-After) until the window clears: back off."""
    pinned.config.update({"peer5_rate_limit": 2, "peer5_rate_window": 1.0})
    start = NOW - 2 * dt.timedelta(days=1)
    end = start + 30 * HOUR  # five 6-hour chunks at 1m

    rows = [row for page in Peer5Hook().export_rows(start, end, Peer5Query("1m", ["http"])) for row in page]

    assert rows == peer5_rows(pinned.config, _ms(start), _ms(end), "1m", ["http"])
    statuses = [entry["status"] for entry in pinned.requests_log if entry["api"] == "peer5"]
    assert statuses.count(200) == 5 and 429 in statuses


def test_every_chunks_csv_header_must_be_the_first_chunks(scripted: Any, monkeypatch: Any) -> None:
    """12 h at 1m is two 6-hour chunks; the second answers with its columns swapped: refused."""
    first, second = _ms(NOW - 12 * HOUR), _ms(NOW - 6 * HOUR)
    scripted.queue(
        scripted_peer5.csv_reply(f'"timestamp","http","p2p"\n{first},1,2\n'),
        scripted_peer5.csv_reply(f'"timestamp","p2p","http"\n{second},2,1\n'),
    )
    chunks = Peer5Hook(scripted_peer5.connect(scripted, monkeypatch, NOW)).export_csv(
        NOW - 12 * HOUR, NOW, Peer5Query("1m", ["http", "p2p"])
    )
    assert next(chunks) == f'"timestamp","http","p2p"\n{first},1,2\n'.encode()
    with pytest.raises(ExportIntegrityError, match="Peer5 CSV header changed between chunks"):
        next(chunks)
    assert len(scripted.requests) == 2


def test_a_later_chunks_identical_header_is_dropped(scripted: Any, monkeypatch: Any) -> None:
    first, second = _ms(NOW - 12 * HOUR), _ms(NOW - 6 * HOUR)
    scripted.queue(
        scripted_peer5.csv_reply(f'"timestamp","http"\n{first},1\n'),
        scripted_peer5.csv_reply(f'"timestamp","http"\n{second},2\n'),
    )
    hook = Peer5Hook(scripted_peer5.connect(scripted, monkeypatch, NOW))
    chunks = list(hook.export_csv(NOW - 12 * HOUR, NOW, Peer5Query("1m", ["http"])))
    assert chunks == [f'"timestamp","http"\n{first},1\n'.encode(), f"{second},2\n".encode()]
