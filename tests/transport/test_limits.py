"""The limit rules and the machine-wide limit with an injected clock: window, pauses, reports."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from airflow_provider_analytics_export.exceptions import LimitBackendError
from airflow_provider_analytics_export.transport.limits import RequestRules, shared_limit
from airflow_provider_analytics_export.transport.machine_limits import (
    LIMITS_DIR_ENV,
    MachineLimit,
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
    assert RequestRules(max_calls=100, per_seconds=10).window == pytest.approx(10.1)
    assert RequestRules(max_in_flight=1).window is None
    with pytest.raises(ValueError, match="max_calls and per_seconds go together"):
        RequestRules(max_calls=100)
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        RequestRules(max_in_flight=0)
    with pytest.raises(ValueError, match="per_seconds > 0"):
        RequestRules(max_calls=10, per_seconds=0)


def test_no_window_of_the_period_holds_more_than_max_calls(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    sent = []
    for _ in range(350):
        with limit.slot():
            sent.append(clock.now - 1_000_000.0)
    for i in range(len(sent) - 100):
        assert sent[i + 100] - sent[i] >= 10.1 - 1e-9
    assert sent[-1] == pytest.approx(3 * 10.1)  # and no slower than the limit requires


def test_the_window_counts_from_the_send_not_the_answer(tmp_path: Path):
    """A slow answer must not push the window back: request 101 may go 10.1 s after request 1 left."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for _ in range(100):
        with limit.slot():
            clock.now += 0.05  # the request's latency: the window started before it
    started = clock.now
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 10.1)
    assert clock.now - started < 10.1


def test_pause_holds_every_caller_until_retry_after(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    other = machine_limit(tmp_path, clock)  # another process's object on the same files
    limit.pause(3.0)
    with other.slot():
        assert clock.now == 1_000_003.0


def test_a_used_up_window_we_caused_ourselves_is_not_waited_out_to_the_whole_second(tmp_path: Path):
    """The server's reset is whole seconds; our own log already holds request 101 to the millisecond."""
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for _ in range(100):
        with limit.slot():
            pass
    limit.window_used_up(10.0, remaining=0)  # our 100 requests: explained, no pause
    with limit.slot():
        assert clock.now == pytest.approx(1_000_000.0 + 10.1)


def test_a_used_up_window_others_spent_pauses_until_the_reset(tmp_path: Path):
    clock = FakeClock()
    limit = machine_limit(tmp_path, clock)
    for _ in range(10):
        with limit.slot():
            pass
    limit.window_used_up(4.0, remaining=3)  # the server counted 97; we sent 10: others share the client
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
        assert clock.now == pytest.approx(1_000_000.0 - 3600.0 + 1.1)


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
