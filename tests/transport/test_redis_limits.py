"""The Redis limit backend against a real redis-server and the sandbox, across real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from airflow_provider_analytics_export.exceptions import LimitBackendError, RateLimitedError
from airflow_provider_analytics_export.hooks.browsee import BrowseeHook
from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders, RequestRules
from airflow_provider_analytics_export.transport.machine_limits import MachineLimit
from airflow_provider_analytics_export.transport.redis_limits import RedisLimit
from analytics_export_sandbox import SandboxServer
from tests.conftest import _free_port
from tests.test_import_cost import parse_time_modules
from tests.transport.test_limits import server_windows
from tests.transport.test_limits_machine import (
    SHORT_WINDOW,
    connection,
    env,
    overlapping_pairs,
    run_workers,
    statuses_after_a_late_first_request,
)

# Processes against a real Redis (~50 s): the main suite runs them; the per-Python matrix does not.
pytestmark = pytest.mark.heavy


def test_four_processes_on_one_browsee_account_never_hold_two_requests_open(
    sandbox_reset: SandboxServer, redis_url: str
):
    sandbox_reset.config.update({"latency_ms": {"browsee": 40}})
    run_workers(4, "browsee", 8, connection(sandbox_reset, "browsee", limit_backend=redis_url))
    log = [e for e in sandbox_reset.requests_log if e["api"] == "browsee"]
    assert len(log) == 32
    assert [e["status"] for e in log] == [200] * 32  # no 429: never a second open request
    assert not any(e["overlap"] for e in log)
    assert overlapping_pairs(log) == 0


def test_four_processes_on_one_openpanel_client_keep_its_window(sandbox_reset: SandboxServer, redis_url: str):
    # The client's window scaled down, the sandbox's with it (20 per 1 s, not 100 per 10 s): the
    # same three windows' worth, without waiting out real 10 s windows.
    sandbox_reset.config.update({"openpanel_rate_limit": 20, "openpanel_rate_window": 1.0})
    conn = connection(sandbox_reset, "openpanel", limit_backend=redis_url)
    run_workers(4, "openpanel", 15, conn, setup=f"Hook.request_limit = {SHORT_WINDOW!r}")
    log = [e for e in sandbox_reset.requests_log if e["api"] == "openpanel"]
    assert [e["status"] for e in log] == [200] * 60  # the sandbox answers 429 past 20 in its fixed window
    starts = sorted(e["started"] for e in log)
    # Three windows, each a second after its first answer, then 20 requests of four busy processes.
    assert starts[-1] - starts[0] <= 2 * 1.1 + 1.0


def test_a_window_whose_first_request_arrives_late_meets_no_429(
    sandbox_reset: SandboxServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
):
    conn_env = connection(sandbox_reset, "openpanel", limit_backend=redis_url)
    assert statuses_after_a_late_first_request(sandbox_reset, conn_env, monkeypatch) == [200] * 6


def test_a_killed_lease_holder_frees_the_slot_within_the_lease(redis_url: str):
    lease = 2.0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from airflow_provider_analytics_export.transport.limits import RequestRules
                from airflow_provider_analytics_export.transport.redis_limits import RedisLimit
                limit = RedisLimit({redis_url!r}, "test|lease", RequestRules(max_in_flight=1), lease={lease})
                with limit.slot():
                    print("held", flush=True)
                    time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waiter = RedisLimit(redis_url, "test|lease", RequestRules(max_in_flight=1), lease=lease)
        acquired = threading.Event()

        def wait_for_slot() -> None:
            with waiter.slot():
                acquired.set()

        threading.Thread(target=wait_for_slot, daemon=True).start()
        # Alive, the holder renews its lease: it keeps the slot well past one lease time.
        assert not acquired.wait(3 * lease)
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert acquired.wait(lease + 2.0)
        assert time.monotonic() - killed <= lease + 0.5
    finally:
        holder.kill()
        holder.wait()


def test_a_pause_in_one_process_holds_every_other(redis_url: str):
    rules = RequestRules(max_calls=100, per_seconds=10.0)
    first = RedisLimit(redis_url, "test|pause", rules)
    other = RedisLimit(redis_url, "test|pause", rules)  # own client, as a process
    first.pause(1.5)
    first.pause(0.2)  # a shorter pause never shortens the one already set
    started = time.monotonic()
    with other.slot():
        assert 1.3 <= time.monotonic() - started <= 2.5


def test_a_429_from_the_api_pauses_the_account_in_redis(sandbox_reset: SandboxServer, redis_url: str):
    sandbox_reset.config.update({"faults": {"rate": 1.0, "kinds": ["429"]}})  # Retry-After: 1
    conn = connection(sandbox_reset, "openpanel", limit_backend=redis_url, max_attempts=1)
    with env(conn):
        hook = OpenPanelHook()
        with pytest.raises(RateLimitedError):
            hook.check_connection()
        other = RedisLimit(redis_url, hook.account_key)
        started = time.monotonic()
        with other.slot():  # a fresh client of the account (another process) waits out Retry-After
            assert time.monotonic() - started >= 0.5


def test_a_used_up_x_ratelimit_window_pauses_every_process(sandbox_reset: SandboxServer, redis_url: str):
    """Server-reported limits still apply on top: other clients of the account spent the window."""

    class ReportingHook(OpenPanelHook):  # the sandbox sends OpenPanel's X-RateLimit-* headers
        rate_limit_headers = RateLimitHeaders()

    sandbox_reset.config.update({"openpanel_rate_limit": 3, "openpanel_rate_window": 2.0})
    with env(connection(sandbox_reset, "openpanel", limit_backend=redis_url)):
        hook = ReportingHook()
        for _ in range(3):
            hook.check_connection()  # the third answer says Remaining: 0, Reset: 2
        other = RedisLimit(redis_url, hook.account_key)
        started = time.monotonic()
        with other.slot():
            assert time.monotonic() - started >= 1.0
    assert [e["status"] for e in sandbox_reset.requests_log] == [200] * 3


def test_unreachable_redis_fails_naming_the_connection_and_backend_without_password(
    sandbox_reset: SandboxServer,
):
    url = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    conn = connection(sandbox_reset, "browsee", limit_backend=url)
    with env(conn), pytest.raises(LimitBackendError) as info:
        BrowseeHook().check_connection()
    message = str(info.value)
    assert "'browsee_default' (Browsee)" in message
    assert "127.0.0.1" in message and "unreachable" in message
    assert "s3cret-pw" not in message and "***" in message
    assert not sandbox_reset.requests_log  # nothing was sent unlimited


def test_a_backend_that_is_not_a_redis_url_is_refused(sandbox_reset: SandboxServer):
    not_redis = connection(sandbox_reset, "browsee", limit_backend="http://cache:6379")
    with env(not_redis), pytest.raises(LimitBackendError, match="'limit_backend'.*redis://"):
        BrowseeHook().check_connection()
    unknown = connection(sandbox_reset, "browsee", limit_backend="no_such_conn")
    with env(unknown), pytest.raises(LimitBackendError, match="'no_such_conn' is neither a Redis URL nor"):
        BrowseeHook().check_connection()


def test_an_airflow_redis_connection_names_the_backend(sandbox_reset: SandboxServer, redis_url: str):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    redis_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": port, "extra": {"db": 3}}
    conn = connection(sandbox_reset, "browsee", limit_backend="limits_redis")
    with env({**conn, "AIRFLOW_CONN_LIMITS_REDIS": json.dumps(redis_conn)}):
        hook = BrowseeHook()
        hook.check_connection()
        assert isinstance(hook.limit, RedisLimit)
        assert hook.limit.url == f"redis://127.0.0.1:{port}/3"
    assert [e["status"] for e in sandbox_reset.requests_log] == [200]


def test_no_window_of_the_period_holds_more_than_max_calls_across_clients(redis_url: str):
    rules = RequestRules(max_calls=5, per_seconds=1.0)
    limits = [RedisLimit(redis_url, "test|window", rules) for _ in range(2)]
    sent: list[float] = []
    for i in range(12):
        with limits[i % 2].slot():
            sent.append(time.monotonic())
    assert server_windows(sent, 1.0) == [5, 5, 2]  # as the API's fixed window counts them
    # Each window a second after its first answer, to the millisecond (not rounded up to whole seconds).
    assert sent[-1] - sent[0] <= 2 * 1.0 + 0.15


def test_an_empty_backend_as_the_ui_form_saves_it_keeps_the_machine_wide_limit(sandbox_reset: SandboxServer):
    with env(connection(sandbox_reset, "browsee", limit_backend=None)):
        hook = BrowseeHook()
        hook.check_connection()
        assert isinstance(hook.limit, MachineLimit)


def test_parsing_a_dag_imports_neither_redis_nor_limits():
    code = "\n".join(
        [
            "import json, sys",
            *(f"import {module}" for module in parse_time_modules()),
            "print(json.dumps([name for name in ('redis', 'limits') if name in sys.modules]))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
