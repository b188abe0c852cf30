"""BrowseeHook against the sandbox (and a scripted server for misbehaving pagination), over real sockets."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
from itertools import pairwise

import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks.browsee import READ_AHEAD_PAGES, BrowseeHook
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.browsee import browsee_sessions
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC)


def expected(sandbox: SandboxServer, start: dt.datetime, end: dt.datetime, **kwargs) -> list[dict]:
    return list(browsee_sessions(sandbox.config, int(start.timestamp()), int(end.timestamp()), **kwargs))


def api_calls(sandbox: SandboxServer) -> list[dict]:
    return [entry for entry in sandbox.requests_log if entry["api"] == "browsee"]


def test_iter_sessions_yields_every_session_of_the_window_once(sandbox_reset):
    rows = list(BrowseeHook().iter_sessions(*DAY))
    assert rows == expected(sandbox_reset, *DAY)
    assert len(rows) == 480
    assert len(api_calls(sandbox_reset)) == 5  # 480 sessions at 100 per page


def test_consecutive_hourly_windows_tile_the_day(sandbox_reset):
    hook = BrowseeHook()
    hours = [DAY[0] + dt.timedelta(hours=h) for h in range(25)]
    rows = [row for a, b in pairwise(hours) for row in hook.iter_sessions(a, b)]
    assert rows == expected(sandbox_reset, *DAY)


def test_fields_and_segment_are_sent(sandbox_reset):
    rows = list(
        BrowseeHook().iter_sessions(*DAY, segment_id="seg-mobile", fields=["duration", "device"], page_size=7)
    )
    assert rows == expected(sandbox_reset, *DAY, segment_id="seg-mobile", fields=["duration", "device"])
    assert rows and {row["device"] for row in rows} == {"Mobile"}
    assert set(rows[0]) == {"sessionId", "duration", "device"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 101}, r"page_size=101 is out of range: use an integer from 1 to 100"),
        ({"page_size": 0}, r"page_size=0 is out of range"),
        ({"fields": ["duration", "colour"]}, r"unknown value\(s\) 'colour'; allowed: userId, duration"),
        ({"fields": []}, r"fields=\[\] must be a non-empty string or a non-empty list"),
    ],
)
def test_bad_arguments_are_rejected_before_any_request(sandbox_reset, kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(BrowseeHook().iter_sessions(*DAY, **kwargs))
    assert api_calls(sandbox_reset) == []


def test_one_request_in_flight_across_threads_and_hooks(sandbox_reset):
    """Four exports on four hooks at once: the sandbox never sees two requests overlap."""
    sandbox_reset.config.update({"latency_ms": {"browsee": 20}})
    results: dict[int, list[dict]] = {}

    def export(n: int) -> None:
        results[n] = list(BrowseeHook().iter_sessions(*DAY, page_size=50))

    threads = [threading.Thread(target=export, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    want = expected(sandbox_reset, *DAY)
    assert all(results[n] == want for n in range(4))
    calls = sorted(api_calls(sandbox_reset), key=lambda entry: entry["started"])
    assert len(calls) == 4 * 10
    assert not any(entry["overlap"] or entry["status"] == 429 for entry in calls)
    assert all(a["ended"] <= b["started"] for a, b in pairwise(calls))


def test_the_next_pages_are_read_while_the_caller_writes_yet_one_request_is_open(sandbox_reset):
    """A slow writer overlaps the next requests, never more than READ_AHEAD_PAGES ahead, one at a time.

    The sandbox runs in this process, so its monotonic request times compare with the writes'.
    """
    sandbox_reset.config.update({"latency_ms": {"browsee": 10}})
    writes: list[tuple[float, float]] = []
    rows = []
    for page in BrowseeHook().iter_session_pages(*DAY, page_size=10):
        began = time.monotonic()
        time.sleep(0.03)  # writing: three times a request
        rows.extend(page)
        writes.append((began, time.monotonic()))
    assert rows == expected(sandbox_reset, *DAY)
    calls = sorted(api_calls(sandbox_reset), key=lambda entry: entry["started"])
    assert len(calls) == len(writes) == 48
    assert not any(entry["overlap"] or entry["status"] == 429 for entry in calls)
    assert all(a["ended"] <= b["started"] for a, b in pairwise(calls))
    # Page n+1 was asked for before page n was written...
    assert all(calls[n + 1]["started"] < writes[n][1] for n in range(len(writes) - 1))
    # ...and page n+1+READ_AHEAD_PAGES only once page n was: memory holds that many pages.
    ahead = READ_AHEAD_PAGES + 1
    assert all(calls[n + ahead]["started"] >= writes[n][1] for n in range(len(writes) - ahead))


def test_faults_are_retried_and_give_the_same_rows(sandbox_reset):
    kinds = ["500", "503", "429", "drop", "truncate"]
    sandbox_reset.config.update({"faults": {"rate": 0.3, "seed": 16, "kinds": kinds}})
    rows = list(BrowseeHook().iter_sessions(*DAY, page_size=40))
    assert rows == expected(sandbox_reset, *DAY)
    assert {entry["fault"] for entry in api_calls(sandbox_reset)} == {None, *kinds}


# -- pagination integrity, with a server scripted to misbehave ------------------------------


@pytest.fixture
def scripted_hook(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> BrowseeHook:
    conn = {"conn_type": "browsee", "host": scripted.url, "login": "key", "password": "secret"}
    monkeypatch.setenv("AIRFLOW_CONN_BROWSEE_SCRIPTED", json.dumps(conn))
    return BrowseeHook("browsee_scripted", max_attempts=1)


DAY_MS = int(DAY[0].timestamp() * 1000)


def page(total: int, *ids: str, with_id: bool = True) -> Reply:
    """A page of sessions named by ``ids`` (each starts in DAY at its own second)."""
    data = [
        {**({"sessionId": i} if with_id else {}), "timestamp": DAY_MS + ord(i) * 1000, "duration": 1}
        for i in ids
    ]
    return Reply(200, {"status": "success", "exports": {"total": total, "to": 0, "data": data}})


def test_overlapping_pages_are_deduplicated_by_session_id(scripted_hook, scripted):
    scripted.queue(page(5, "a", "b", "c"), page(5, "c", "d", "e"))
    rows = list(scripted_hook.iter_sessions(*DAY, page_size=3))
    assert [row["sessionId"] for row in rows] == ["a", "b", "c", "d", "e"]
    offsets = [json.loads(request["body"])["from"] for request in scripted.requests]
    assert offsets == [0, 3]


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ((page(6, "a", "b", "c"), page(6, "a", "b", "c")), r"page 2 repeats the previous page"),
        ((page(6, "a", "b", "c"), page(6)), r"empty page 2 after 3 of 6 rows: the server stopped early"),
        ((page(6, "a", "b", "c"), page(7, "d", "e", "f")), r"total changed from 6 to 7 at page 2"),
        (
            (page(4, "a", "b", "c"), page(4, "c", "d", "e")),
            r"reported 4 rows but 5 distinct rows arrived|sent 5",
        ),
    ],
)
def test_pagination_that_does_not_add_up_fails_loudly(scripted_hook, scripted, replies, message):
    scripted.queue(*replies)
    with pytest.raises(ExportIntegrityError, match=message):
        list(scripted_hook.iter_sessions(*DAY, page_size=3))


def test_overlapping_pages_without_session_ids_are_deduplicated_by_content(scripted_hook, scripted):
    scripted.queue(page(5, "a", "b", "c", with_id=False), page(5, "c", "d", "e", with_id=False))
    rows = list(scripted_hook.iter_sessions(*DAY, page_size=3))
    assert [row["timestamp"] for row in rows] == [DAY_MS + ord(i) * 1000 for i in "abcde"]
    assert not any("sessionId" in row for row in rows)


@pytest.mark.parametrize("with_id", [True, False], ids=["ids", "no-ids"])
def test_a_repeated_page_is_caught_with_or_without_session_ids(scripted_hook, scripted, with_id):
    scripted.queue(page(6, "a", "b", "c", with_id=with_id), page(6, "a", "b", "c", with_id=with_id))
    with pytest.raises(ExportIntegrityError, match="page 2 repeats the previous page"):
        list(scripted_hook.iter_sessions(*DAY, page_size=3))


def test_the_page_loop_ends_at_the_reported_total(scripted_hook, scripted):
    """Pages that only shuffle rows already seen: stop at offset == total and fail, not loop on."""
    scripted.queue(*[page(4, "a", "b"), page(4, "b", "a")] * 10)
    with pytest.raises(ExportIntegrityError, match="reported 4 rows but 2 distinct rows arrived"):
        list(scripted_hook.iter_sessions(*DAY, page_size=2))
    assert len(scripted.requests) == 2


def test_pages_of_rows_already_seen_fail_within_the_page_bound(scripted_hook, scripted):
    """Alternating pages of two rows already seen (the repeated-page check cannot tell): fail in a few pages.

    2,000 rows at 2 per page need 1,000 pages; once the rows still missing cannot fit into
    the pages left (plus a slack of 2), the export stops instead of reading 1,000 pages.
    """
    scripted.queue(*[page(2000, "a", "b"), page(2000, "b", "a")] * 600)
    with pytest.raises(ExportIntegrityError, match=r"page 4 leaves 1,998 of 2,000 rows still to come"):
        list(scripted_hook.iter_sessions(*DAY, page_size=2))
    assert len(scripted.requests) == 4


def test_a_server_stuck_on_one_short_page_fails_within_the_page_bound(scripted_hook, scripted):
    """One one-row page sent again and again with a large total: caught at once, never read on."""
    scripted.queue(page(10_000, "a"))  # the scripted server repeats its last reply
    with pytest.raises(ExportIntegrityError, match=r"page 2 repeats the previous page|still to come"):
        list(scripted_hook.iter_sessions(*DAY, page_size=100))
    assert len(scripted.requests) <= 3


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"sessionId": "x", "duration": 1}, "timestamp=None"),
        ({"sessionId": "x", "timestamp": DAY_MS - 1}, f"timestamp={DAY_MS - 1} for start="),
        ({"sessionId": "x", "timestamp": DAY_MS + 86_401_000}, "refusing to place it in a window"),
    ],
)
def test_a_session_that_cannot_be_placed_in_the_window_fails(scripted_hook, scripted, session, message):
    scripted.queue(Reply(200, {"status": "success", "exports": {"total": 1, "to": 1, "data": [session]}}))
    with pytest.raises(ExportIntegrityError, match=re.escape(message)):
        list(scripted_hook.iter_sessions(*DAY))


def test_timestamp_is_always_asked_for_and_only_returned_when_selected(sandbox_reset):
    rows = list(BrowseeHook().iter_sessions(*DAY, fields=["device"]))
    assert rows == [
        {k: v for k, v in row.items() if k != "timestamp"}
        for row in expected(sandbox_reset, *DAY, fields=["device", "timestamp"])
    ]


# -- every reading of what the page leaves open ----------------------------------------------

READINGS = [  # every combination of the three switches
    pytest.param(
        {"browsee_end_inclusive": inclusive, "browsee_session_id": ids, "browsee_sparse": sparse},
        id=f"{'inclusive' if inclusive else 'exclusive'}-{'ids' if ids else 'no-ids'}"
        + ("-sparse" if sparse else ""),
    )
    for inclusive, ids, sparse in itertools.product((False, True), repeat=3)
]
FAULTS = {"rate": 0.25, "seed": 11, "kinds": ["500", "503", "429", "drop", "truncate"]}


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
@pytest.mark.parametrize("reading", READINGS)
def test_consecutive_windows_cut_at_session_starts_hold_each_session_once(sandbox_reset, reading, faults):
    """Windows ending on the second (and on the millisecond) a session starts: it lands in the next one."""
    sandbox_reset.config.update({**reading, **({"faults": FAULTS} if faults else {})})
    day = expected(sandbox_reset, *DAY)
    on_second = dt.datetime.fromtimestamp(day[150]["timestamp"] // 1000, UTC)
    on_millisecond = dt.datetime.fromtimestamp(day[300]["timestamp"] / 1000, UTC)
    bounds = [DAY[0], on_second, on_millisecond, DAY[1]]
    hook = BrowseeHook()

    runs = [list(hook.iter_sessions(a, b, page_size=40)) for a, b in pairwise(bounds)]

    assert [row for run in runs for row in run] == day
    assert runs[1][0]["timestamp"] // 1000 == day[150]["timestamp"] // 1000
    assert runs[2][0] == day[300]
    for run, (a, b) in zip(runs, pairwise(bounds), strict=True):
        assert all(a.timestamp() * 1000 <= row["timestamp"] < b.timestamp() * 1000 for row in run)
    if reading["browsee_sparse"]:
        assert any("email" not in row for row in day)
    if faults:
        assert {entry["fault"] for entry in api_calls(sandbox_reset)} > {None}
