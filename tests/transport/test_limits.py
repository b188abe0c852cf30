"""The limit rules and the machine-wide limit with an injected clock: window, pauses, reports."""

from __future__ import annotations

import math
import os
import random
import stat
import tempfile
from pathlib import Path

import pytest

from airflow_provider_analytics_export.exceptions import LimitBackendError
from airflow_provider_analytics_export.transport import limits
from airflow_provider_analytics_export.transport.limits import RequestRules, shared_limit
from airflow_provider_analytics_export.transport.machine_limits import (
    LIMITS_DIR_ENV,
    MachineLimit,
    SlotFile,
    limits_dir,
)

OPENPANEL = RequestRules(max_calls=100, per_seconds=10.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def machine_limit(tmp_path: Path, clock: FakeClock, rules: RequestRules = OPENPANEL) -> MachineLimit:
    return MachineLimit("test|account", rules, tmp_path, clock=clock, sleep=clock.sleep)


def test_rules_are_named_and_checked():
    with pytest.raises(ValueError, match="max_calls and per_seconds go together"):
        RequestRules(max_calls=100)
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        RequestRules(max_in_flight=0)
    with pytest.raises(ValueError, match="per_seconds > 0"):
        RequestRules(max_calls=10, per_seconds=0)


def server_windows(arrivals: list[float], per_seconds: float) -> list[int]:
    """How many requests each window of the API's fixed-window limiter counts (OpenPanel's rule)."""
    counts: list[int] = []
    ends = -math.inf
    for arrival in sorted(arrivals):
        if arrival >= ends:
            counts.append(0)
            ends = arrival + per_seconds
        counts[-1] += 1
    return counts


def test_no_server_window_ever_counts_more_than_max_calls(tmp_path: Path):
    """Irregular sends, each reaching the server up to 0.09 s later and answered up to 0.5 s after
    that: its windows never see 101."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    draw = random.Random(7)
    arrivals = []
    for _ in range(1000):
        clock.now += draw.choice((0.0, 0.0, 0.01, 0.3, 2.0))
        with limit.slot():
            arrivals.append(clock.now + draw.uniform(0, 0.09))
            clock.now = arrivals[-1] + draw.uniform(0, 0.5)  # answered
    assert max(server_windows(arrivals, 10.0)) <= 100


def test_a_full_window_is_used_and_the_next_opens_when_it_ends(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    sent = []
    for _ in range(350):
        with limit.slot():
            sent.append(clock.now - 1_000_000.0)
    assert sent[:100] == [0.0] * 100
    assert sent[100] == pytest.approx(10.0, abs=1e-6) and sent[-1] == pytest.approx(3 * 10.0, abs=1e-6)


def test_after_a_burst_the_next_window_opens_whole(tmp_path: Path):
    """A log of sends would hold requests 105+ back until 10 s after request 5; the API does not."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for at in [0.0] * 4 + [3.0] * 96 + [None] * 100:
        if at is not None:
            clock.now = 1_000_000.0 + at
        with limit.slot():
            pass
    assert clock.now == pytest.approx(1_000_000.0 + 10.0, abs=1e-6)  # the second window, all at its start


def test_the_next_window_opens_a_window_after_the_first_answer(tmp_path: Path):
    """The server's window opened when request 1 arrived, at the latest when it was answered."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    with limit.slot() as exchange:
        clock.now += 0.4  # request 1 on its way: the server's window opens somewhere in here
        exchange.answered()
        clock.now += 0.2  # its body parsed and written: not part of the window
    for _ in range(99):
        with limit.slot():
            clock.now += 0.01  # later answers do not move the window
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 0.4 + 10.0, abs=1e-6)


def test_a_window_s_requests_go_before_its_first_answer_is_in(tmp_path: Path):
    """Only the next window waits for the first answer: the requests of this one go at once."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    sent = []
    with limit.slot():  # request 1, still unanswered while the other 99 go
        for _ in range(99):
            with limit.slot():
                sent.append(clock.now)
        clock.now += 0.3
    assert sent == [1_000_000.0] * 99
    with limit.slot():  # request 2's answer (at 0 s) came first: it ends the window
        assert clock.now == pytest.approx(1_000_000.0 + 10.0, abs=1e-6)


def test_a_window_never_answered_ends_after_its_presumed_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A process killed mid-request never reports its answer: the account waits for it, not forever."""
    monkeypatch.setattr(limits, "UNANSWERED_POLL", 1.0)  # fewer looks with the fake clock
    clock = FakeClock()
    killed = machine_limit(tmp_path, clock, RequestRules(max_calls=1, per_seconds=1.0))
    killed._wait_for_rate()  # counted in a window, then the process died: no answer ever
    other = machine_limit(tmp_path, clock, RequestRules(max_calls=1, per_seconds=1.0))
    with other.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 1.0 + limits.UNANSWERED_SECONDS, abs=1e-6)


def test_nothing_is_sent_in_the_margin_before_the_window_ends(tmp_path: Path):
    """A request sent just before our window ends could reach the server after its window ended."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    with limit.slot():
        pass
    clock.now += 9.95
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 10.0, abs=1e-6)


def test_pause_holds_every_caller_until_retry_after(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    other = machine_limit(tmp_path, clock)  # another process's object on the same files
    limit.pause(3.0)
    with other.slot():
        assert clock.now == 1_000_003.0


def test_a_used_up_window_we_caused_ourselves_is_not_waited_out_to_the_whole_second(tmp_path: Path):
    """The server's reset is whole seconds; our own window already holds request 101 to the millisecond."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for _ in range(100):
        with limit.slot():
            clock.now += 0.001
    limit.window_used_up(10.0, remaining=0)  # our 100 requests: explained, no pause
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 0.001 + 10.0, abs=1e-6)


def test_a_used_up_window_others_spent_pauses_until_the_reset(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for _ in range(10):
        with limit.slot():
            pass
    limit.window_used_up(4.0, remaining=3)  # the server counted 97; we sent 10: others share the client
    with limit.slot():
        assert clock.now == 1_000_004.0
    for _ in range(99):  # the API's window ended with the pause: a whole new one opened with it
        with limit.slot():
            assert clock.now == 1_000_004.0


def test_an_api_without_a_rate_rule_pauses_on_any_used_up_report(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock, RequestRules())
    limit.window_used_up(2.0, remaining=0)
    with limit.slot():
        assert clock.now == 1_000_002.0


def test_a_clock_set_back_does_not_stretch_the_window(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock, RequestRules(max_calls=1, per_seconds=1.0))
    with limit.slot():
        pass
    clock.now -= 3600.0  # NTP stepped the wall clock back an hour
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 - 3600.0 + 1.0, abs=1e-6)


def test_shared_limit_returns_one_object_per_key(tmp_path: Path):
    first = shared_limit("test|a", lambda: MachineLimit("test|a", RequestRules(max_in_flight=1), tmp_path))
    assert shared_limit("test|a", lambda: MachineLimit("test|a", RequestRules(), tmp_path)) is first
    assert shared_limit("test|b", lambda: MachineLimit("test|b", RequestRules(), tmp_path)) is not first


def test_file_names_hold_a_digest_of_the_account_never_its_login_or_key(tmp_path: Path):
    account = "browsee|https://api.browsee.io|api-key-s3cret"
    limit = MachineLimit(account, RequestRules(max_in_flight=1), tmp_path)
    with limit.slot():
        limit.pause(0.001)
    names = [path.name for path in tmp_path.iterdir()]
    assert names and not any("s3cret" in name or "browsee" in name for name in names)
    assert not any("s3cret" in path.read_text() for path in tmp_path.iterdir() if path.stat().st_size)


def test_the_default_directory_is_private_to_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(LIMITS_DIR_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    path = limits_dir()
    assert path == tmp_path / f"airflow-analytics-export-limits-{os.getuid()}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    path.rmdir()
    path.symlink_to(tmp_path)  # planted by someone else: refused, not followed
    with pytest.raises(LimitBackendError, match=LIMITS_DIR_ENV):
        limits_dir()


def test_the_directory_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(LIMITS_DIR_ENV, str(tmp_path / "shared"))
    assert limits_dir() == tmp_path / "shared"


def test_an_unusable_directory_fails_naming_it_and_the_variable(tmp_path: Path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(LimitBackendError, match=rf"Connection 'x'.*{not_a_directory}.*{LIMITS_DIR_ENV}"):
        MachineLimit("test|a", RequestRules(), not_a_directory, where="Connection 'x'")


def test_a_slot_file_is_one_process_s_lock_even_across_a_fork(tmp_path: Path):
    """flock belongs to the open file: a forked child must not take (or keep) its parent's slot."""
    path = str(tmp_path / "slot.lock")
    held = SlotFile(path)
    assert held.try_acquire()
    child = os.fork()
    if child == 0:  # the child: the parent holds the slot, so the child cannot take it
        os._exit(0 if not held.try_acquire() else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child took its parent's slot"
    other = SlotFile(path)  # another process's view: taken until the holder gives it back
    assert not other.try_acquire()
    held.release()
    assert other.try_acquire() and not held.try_acquire()


def test_a_window_whose_first_request_arrives_late_meets_no_429(
    sandbox_reset, monkeypatch: pytest.MonkeyPatch
):
    """The sandbox counts a request once its latency is over: a slow first request opens its window late."""
    from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook

    monkeypatch.setattr(OpenPanelHook, "request_limit", RequestRules(max_calls=5, per_seconds=1.0))
    sandbox_reset.config.update(
        {"openpanel_rate_limit": 5, "openpanel_rate_window": 1.0, "latency_ms": {"openpanel": 400}}
    )
    hook = OpenPanelHook()
    hook.check_connection()  # the window's first: the server opens its window 0.4 s after our send
    sandbox_reset.config.update({"latency_ms": {"openpanel": 0}})
    for _ in range(5):  # four more fill the window; the fifth opens our next one
        hook.check_connection()
    statuses = [e["status"] for e in sandbox_reset.requests_log if e["api"] == "openpanel"]
    assert 429 not in statuses, statuses


def test_the_next_window_counts_from_the_answer_not_from_the_end_of_its_parsing(
    sandbox_reset, monkeypatch: pytest.MonkeyPatch
):
    """Parsing and writing a page is not on the rate's critical path: the client reports the answer first."""
    import time

    from airflow_provider_analytics_export.hooks.openpanel import EVENTS_ENDPOINT, OpenPanelHook

    monkeypatch.setattr(OpenPanelHook, "request_limit", RequestRules(max_calls=5, per_seconds=1.0))
    sandbox_reset.config.update({"openpanel_rate_limit": 5, "openpanel_rate_window": 1.0})
    hook = OpenPanelHook()

    def slow_parse(response: object) -> None:
        time.sleep(0.5)  # a page written somewhere slow

    hook.request("GET", EVENTS_ENDPOINT, params={"projectId": "proj-web", "limit": 1}, parse=slow_parse)
    for _ in range(5):  # four more fill the window; the fifth opens our next one
        hook.check_connection()
    log = [e for e in sandbox_reset.requests_log if e["api"] == "openpanel"]
    assert [e["status"] for e in log] == [200] * 6
    after_first_answer = log[5]["started"] - log[0]["ended"]
    assert 1.0 <= after_first_answer < 1.3, after_first_answer  # 1.5 if the window waited for the parse
