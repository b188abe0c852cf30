"""The shared transport, over real sockets against a scripted server."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from airflow_provider_analytics_export.exceptions import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitedError,
    ServerWaitTooLongError,
    TlsHandshakeError,
    TransientApiError,
)
from airflow_provider_analytics_export.hooks.browsee import BrowseeHook
from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook
from airflow_provider_analytics_export.hooks.peer5 import Peer5Hook
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.transport.retry import TRANSPORT_COUNTS
from tests.scripted_server import Reply, ScriptedServer

TOKEN = "peer5-token-that-must-never-leak"


@pytest.fixture
def peer5(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Peer5Hook:
    conn = {"conn_type": "peer5", "host": scripted.url, "password": TOKEN, "extra": {"timeout": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_SCRIPTED", json.dumps(conn))
    return Peer5Hook("peer5_scripted")


def call(hook: Peer5Hook) -> dict:
    return hook.request("POST", "/v1/export", params={"format": "json"}, json={"from": 0})


@pytest.fixture
def logs(caplog, capsys):
    """Everything logged: stdlib records (urllib3, requests) and Airflow's structlog output."""
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + capsys.readouterr().out


def test_retry_after_seconds_is_honoured_and_logged(peer5, scripted, logs):
    scripted.queue(
        Reply(429, {"error": True, "message": "slow down"}, {"Retry-After": "1"}), Reply(200, {"ok": 1})
    )
    started = time.monotonic()
    assert call(peer5) == {"ok": 1}
    assert time.monotonic() - started >= 1.0
    assert len(scripted.requests) == 2
    assert "HTTP 429): slow down; retry 1/5 in 1." in logs()


@pytest.mark.parametrize(
    ("status", "body", "error_class", "message"),
    [
        (
            400,
            {"error": True, "message": "Timestamp must be rounded to interval"},
            InvalidRequestError,
            "Timestamp must be rounded to interval",
        ),
        (401, {"error": True, "message": "Invalid auth token"}, AuthenticationError, "Invalid auth token"),
        (404, {"detail": "Export not found"}, InvalidRequestError, "Export not found"),
    ],
)
def test_client_errors_fail_at_once_with_the_apis_message(
    peer5, scripted, status, body, error_class, message
):
    scripted.queue(Reply(status, body))
    with pytest.raises(error_class) as info:
        call(peer5)
    assert len(scripted.requests) == 1
    assert str(info.value) == f"Peer5 POST /v1/export failed (HTTP {status}): {message}"
    assert info.value.status == status


@pytest.mark.parametrize("action", ["drop", "truncate"])
def test_dropped_and_truncated_responses_are_retried(peer5, scripted, action, logs):
    scripted.queue(Reply(200, {"data": list(range(500))}, action=action), Reply(200, {"ok": 2}))
    assert call(peer5) == {"ok": 2}
    assert len(scripted.requests) == 2
    assert "retry 1/5" in logs()


def test_read_timeout_is_retried(peer5, scripted):
    scripted.queue(Reply(200, {"late": True}, delay=1.5), Reply(200, {"ok": 3}))
    assert call(peer5) == {"ok": 3}
    assert len(scripted.requests) == 2


def test_server_errors_exhaust_bounded_attempts(scripted, monkeypatch):
    conn = {"conn_type": "peer5", "host": scripted.url, "password": TOKEN, "extra": {"max_attempts": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_FLAKY", json.dumps(conn))
    scripted.queue(
        Reply(503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})
    )
    with pytest.raises(TransientApiError, match=r"HTTP 503\): HTML error page"):
        call(Peer5Hook("peer5_flaky"))
    assert len(scripted.requests) == 3


def test_persistent_429_raises_rate_limited(scripted, monkeypatch):
    conn = {"conn_type": "peer5", "host": scripted.url, "password": TOKEN, "extra": {"max_attempts": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_LIMITED", json.dumps(conn))
    scripted.queue(Reply(429, {"error": True, "message": "quota"}, {"Retry-After": "0"}))
    with pytest.raises(RateLimitedError, match="quota"):
        call(Peer5Hook("peer5_limited"))


def test_credentials_go_in_headers_and_never_in_logs_or_errors(peer5, scripted, logs):
    scripted.queue(
        Reply(500, {"error": True, "message": "boom"}), Reply(401, {"error": True, "message": "nope"})
    )
    with pytest.raises(AuthenticationError) as info:
        call(peer5)
    text = logs()
    assert "HTTP 500): boom; retry 1/5" in text
    first = scripted.requests[0]
    assert first["headers"]["X-Auth-Token"] == TOKEN
    assert TOKEN not in first["path"]
    assert TOKEN not in text
    assert TOKEN not in str(info.value)


def test_browsee_calls_never_overlap_even_from_threads(scripted, monkeypatch):
    conn = {"conn_type": "browsee", "host": scripted.url, "login": "k", "password": "browsee-secret-xyz"}
    monkeypatch.setenv("AIRFLOW_CONN_BROWSEE_SCRIPTED", json.dumps(conn))
    scripted.queue(
        *[Reply(200, {"status": "success", "exports": {"total": 0, "to": 0, "data": []}}, delay=0.05)] * 8
    )

    def worker() -> None:  # a fresh hook per thread: the limit is per account, not per object
        BrowseeHook("browsee_scripted").post_sessions({"from": 0, "limit": 1})

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scripted.requests) == 8
    assert scripted.max_in_flight == 1
    body = json.loads(scripted.requests[0]["body"])
    assert body["secretKey"] == "browsee-secret-xyz"  # in the body, as the API wants ...
    assert "browsee-secret-xyz" not in scripted.requests[0]["path"]  # ... never in the URL


def test_openpanel_limit_is_shared_by_hooks_of_one_client(scripted, monkeypatch):
    conn = {"conn_type": "openpanel", "host": scripted.url, "login": "client-a", "password": "s3cret-value"}
    monkeypatch.setenv("AIRFLOW_CONN_OP_A", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_OP_B", json.dumps(conn))
    first, second = OpenPanelHook("op_a"), OpenPanelHook("op_b")
    assert first.limit is second.limit
    assert (first.limit.max_calls, first.limit.period) == (100, 10.0)


def test_test_connection_reports_the_apis_own_error(scripted, monkeypatch):
    conn = {"conn_type": "peer5", "host": scripted.url, "password": "wrong-token"}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_BAD", json.dumps(conn))
    scripted.queue(Reply(401, {"error": True, "message": "Invalid auth token"}))
    # Which API, which call, which status, and the API's own words (not just the words).
    assert Peer5Hook("peer5_bad").test_connection() == (
        False,
        "Peer5 POST /v1/export failed (HTTP 401): Invalid auth token",
    )


def plain_http_host(scripted: ScriptedServer) -> str:
    return scripted.url.removeprefix("http://")


@pytest.mark.parametrize("host_of", [plain_http_host, lambda s: s.url.replace("http://", "https://")])
def test_tls_against_a_plain_http_server_fails_in_one_attempt_saying_so(scripted, monkeypatch, logs, host_of):
    conn = {"conn_type": "peer5", "host": host_of(scripted), "password": "tok-12345"}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_NOSCHEME", json.dumps(conn))
    hook = Peer5Hook("peer5_noscheme")
    assert hook.base_url.startswith("https://127.0.0.1:")
    before = TRANSPORT_COUNTS.snapshot()
    started = time.monotonic()

    ok, message = hook.test_connection()

    assert time.monotonic() - started < 3  # six attempts with backoff took 11 s
    assert TRANSPORT_COUNTS.snapshot() == (before[0] + 1, before[1])  # one attempt, no retry
    assert not ok
    assert message.startswith(
        "Peer5 POST /v1/export failed (no response): TLS handshake with https://127.0.0.1:"
    )
    assert "WRONG_VERSION_NUMBER" in message and "set the connection's host to http://" in message
    no_scheme = "the connection's host has no scheme, so https was used"
    assert (no_scheme in message) == (host_of is plain_http_host)
    assert "retry" not in logs()


def test_requests_and_retries_are_counted_for_the_closing_log_line(peer5, scripted):
    scripted.queue(Reply(503, {"message": "busy"}), Reply(500, {}), Reply(200, {"ok": 1}))
    before = TRANSPORT_COUNTS.snapshot()
    call(peer5)
    assert TRANSPORT_COUNTS.snapshot() == (before[0] + 3, before[1] + 2)
    assert len(scripted.requests) == 3


def test_missing_host_is_a_clear_error(monkeypatch):
    from airflow_provider_analytics_export.hooks.braze import BrazeHook

    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_NOHOST", json.dumps({"conn_type": "braze", "password": "k"}))
    ok, message = BrazeHook("braze_nohost").test_connection()
    assert not ok
    assert "has no host" in message and "REST endpoint" in message


def test_error_is_catchable_as_api_error(peer5, scripted):
    scripted.queue(Reply(422, {"detail": "nope"}))
    with pytest.raises(ApiError):
        call(peer5)


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"status": "success"}, ("exports", "total"), "response has no 'exports' field"),
        ({"exports": {"data": []}}, ("exports", "total"), "response has no 'exports.total' field"),
        (
            {"series": [{"data": [{"count": 1}]}]},
            ("series", 0, "data", 0, "date"),
            "'series[0].data[0].date'",
        ),
        ({"series": [{"id": "x"}]}, ("series", 1, "data"), "response has no 'series[1]' field"),
        ([1, 2], ("meta",), "response has no 'meta' field"),
    ],
)
def test_missing_field_fails_at_once_naming_api_endpoint_and_field(peer5, scripted, body, path, message):
    """A complete body without a documented field is not retried: the same body would come back."""
    scripted.queue(Reply(200, body))
    parse = lambda response: peer5.body_reader(response, "POST", "/v1/export")(*path)  # noqa: E731
    with pytest.raises(MalformedResponseError) as info:
        peer5.request("POST", "/v1/export", json={}, parse=parse)
    assert message in str(info.value)
    assert "Peer5 POST /v1/export failed (HTTP 200)" in str(info.value)
    assert len(scripted.requests) == 1


def test_required_field_of_the_wrong_type_is_named(peer5, scripted):
    scripted.queue(Reply(200, {"data": {"rows": []}}))
    parse = lambda response: peer5.body_reader(response, "POST", "/v1/export")("data", kind=list)  # noqa: E731
    with pytest.raises(MalformedResponseError, match="response field 'data' is dict, not list"):
        peer5.request("POST", "/v1/export", json={}, parse=parse)


class _SecondsHeadersHook(Peer5Hook):
    """A hook whose API reports its window as OpenPanel does: seconds left."""

    rate_limit_headers = RateLimitHeaders("x-ratelimit-remaining", "x-ratelimit-reset", "seconds")


class _EpochHeadersHook(Peer5Hook):
    """A hook whose API reports its window as Braze does: the reset as UTC epoch seconds."""

    rate_limit_headers = RateLimitHeaders(reset_is="epoch")


def _rate_hooks(scripted, monkeypatch, hook_class, count=1):
    conn = {"conn_type": "peer5", "host": scripted.url, "password": TOKEN, "extra": {"timeout": 5}}
    for number in range(count):
        monkeypatch.setenv(f"AIRFLOW_CONN_PEER5_RATE_{number}", json.dumps(conn))
    return [hook_class(f"peer5_rate_{number}") for number in range(count)]


def test_a_used_up_window_pauses_every_caller_of_the_account_until_its_reset(scripted, monkeypatch):
    first, second = _rate_hooks(scripted, monkeypatch, _SecondsHeadersHook, count=2)
    scripted.queue(
        Reply(200, {"n": 1}, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}),
        Reply(200, {"n": 2}, {"x-ratelimit-remaining": "99", "x-ratelimit-reset": "10"}),
        Reply(200, {"n": 3}, {"x-ratelimit-remaining": "98", "x-ratelimit-reset": "9"}),
    )
    assert call(first) == {"n": 1}
    assert call(second) == {"n": 2}  # another hook (task) on the same account waits too
    assert call(first) == {"n": 3}
    sent = [request["time"] for request in scripted.requests]
    assert sent[1] - sent[0] >= 1.0
    assert sent[2] - sent[1] < 0.9  # windows with requests left cost nothing


def test_a_429_with_only_a_reset_epoch_waits_for_the_reset_not_blind_backoff(scripted, monkeypatch):
    (hook,) = _rate_hooks(scripted, monkeypatch, _EpochHeadersHook)
    reset = int(time.time()) + 3
    scripted.queue(
        Reply(
            429, {"message": "rate limited"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        ),
        Reply(200, {"ok": 1}),
    )
    assert call(hook) == {"ok": 1}
    assert len(scripted.requests) == 2
    # The first blind backoff would be 0.25-0.5 s; the reset is 2-3 s away.
    assert scripted.requests[1]["time"] - scripted.requests[0]["time"] >= 1.9
    assert time.time() >= reset - 1


def test_retry_after_wins_over_the_window_reset(scripted, monkeypatch):
    (hook,) = _rate_hooks(scripted, monkeypatch, _SecondsHeadersHook)
    scripted.queue(
        Reply(
            429,
            {"message": "slow"},
            {"Retry-After": "1", "x-ratelimit-reset": "30", "x-ratelimit-remaining": "0"},
        ),
        Reply(200, {"ok": 1}),
    )
    started = time.monotonic()
    assert call(hook) == {"ok": 1}
    assert 1.0 <= time.monotonic() - started < 5


def test_unreadable_rate_headers_are_ignored(scripted, monkeypatch):
    (hook,) = _rate_hooks(scripted, monkeypatch, _SecondsHeadersHook)
    scripted.queue(
        Reply(200, {"n": 1}, {"x-ratelimit-remaining": "none", "x-ratelimit-reset": "soon"}),
        Reply(200, {"n": 2}),
    )
    started = time.monotonic()
    assert call(hook) == {"n": 1} and call(hook) == {"n": 2}
    assert time.monotonic() - started < 0.9


def test_a_429_pauses_the_other_callers_of_the_account_too(scripted, monkeypatch):
    first, second = _rate_hooks(scripted, monkeypatch, Peer5Hook, count=2)
    scripted.queue(
        Reply(429, {"error": True, "message": "slow down"}, {"Retry-After": "2"}), Reply(200, {"ok": 1})
    )
    worker = threading.Thread(target=call, args=(first,))
    worker.start()
    while not scripted.requests:
        time.sleep(0.01)
    time.sleep(0.2)  # the 429 has been answered and has set the pause
    assert call(second) == {"ok": 1}
    worker.join()
    first_sent, *later = (request["time"] for request in scripted.requests)
    assert len(later) == 2
    assert all(sent - first_sent >= 1.9 for sent in later)


def test_async_transport_reports_tls_against_plain_http_the_same_way(scripted, monkeypatch):
    import asyncio

    import aiohttp

    conn = {"conn_type": "peer5", "host": plain_http_host(scripted), "password": "tok-12345"}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_ASYNC_NOSCHEME", json.dumps(conn))
    hook = Peer5Hook("peer5_async_noscheme")
    before = TRANSPORT_COUNTS.snapshot()

    async def call_async() -> None:
        async with aiohttp.ClientSession() as session:
            await hook.arequest(session, "GET", "/v1/export")

    with pytest.raises(TlsHandshakeError, match=r"SSL: WRONG_VERSION_NUMBER\): the connection's host has no"):
        asyncio.run(call_async())
    assert TRANSPORT_COUNTS.snapshot() == (before[0] + 1, before[1])


def test_a_handshake_cut_short_is_retried_like_a_dropped_connection(monkeypatch):
    """EOF during the handshake is not a TLS misconfiguration: another attempt may succeed."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up() -> None:
        while len(accepted) < 2:
            client, _ = listener.accept()
            accepted.append(client)
            client.recv(1)  # the ClientHello has begun; close mid-handshake
            client.close()

    threading.Thread(target=hang_up, daemon=True).start()
    conn = {
        "conn_type": "peer5",
        "host": f"https://127.0.0.1:{listener.getsockname()[1]}",
        "password": "t-12345",
    }
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_EOF", json.dumps(conn))
    with pytest.raises(TransientApiError, match="connection failed or dropped"):
        Peer5Hook("peer5_eof", max_attempts=2).request("GET", "/v1/export")
    assert len(accepted) == 2
    listener.close()


def test_a_5xx_is_backed_off_not_held_until_the_windows_reset(scripted, monkeypatch):
    """APIs send their window on every answer: a 500 must not wait for its reset like a 429."""
    (hook,) = _rate_hooks(scripted, monkeypatch, _SecondsHeadersHook)
    window = {"x-ratelimit-remaining": "50", "x-ratelimit-reset": "30"}
    scripted.queue(Reply(500, {"message": "boom"}, window), Reply(200, {"ok": 1}, window))
    started = time.monotonic()
    assert call(hook) == {"ok": 1}
    assert time.monotonic() - started < 5


def test_hooks_take_their_apis_conn_id_keyword_and_default_to_its_default_connection():
    assert BrowseeHook().conn_id == "browsee_default"
    assert BrowseeHook(browsee_conn_id="x").conn_id == "x"
    assert BrowseeHook("y").conn_id == "y"
    assert BrowseeHook(conn_id="z", max_attempts=2).max_attempts == 2
    assert (Peer5Hook.conn_name_attr, Peer5Hook.default_conn_name, Peer5Hook.api_name) == (
        "peer5_conn_id",
        "peer5_default",
        "Peer5",
    )
    with pytest.raises(TypeError, match="peer5_conn_id"):
        BrowseeHook(peer5_conn_id="x")
    with pytest.raises(TypeError, match="both"):
        BrowseeHook("x", browsee_conn_id="y")


def test_the_async_sender_answers_like_the_sync_one(scripted, monkeypatch):
    """One answer path: an HTML page described, not dumped; a 429 pauses every caller of the account."""
    import asyncio

    import aiohttp

    _rate_hooks(scripted, monkeypatch, Peer5Hook, count=2)
    first, second = Peer5Hook("peer5_rate_0", max_attempts=1), Peer5Hook("peer5_rate_1")
    scripted.queue(
        Reply(503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"}),
        Reply(429, {"error": True, "message": "slow down"}, {"Retry-After": "2"}),
        Reply(200, {"ok": 1}),
    )

    async def call_async() -> None:
        async with aiohttp.ClientSession() as session:
            await first.arequest(session, "POST", "/v1/export", json={"from": 0})

    with pytest.raises(TransientApiError, match=r"HTTP 503\): HTML error page \(text/html\)$"):
        asyncio.run(call_async())
    with pytest.raises(RateLimitedError, match="slow down"):
        asyncio.run(call_async())
    assert call(second) == {"ok": 1}  # a sync caller of the same account waited out the 429
    assert scripted.requests[2]["time"] - scripted.requests[1]["time"] >= 1.9


def test_a_missing_credential_is_named_before_anything_is_sent(scripted, monkeypatch):
    conn = {"conn_type": "browsee", "host": scripted.url, "password": "browsee-secret-xyz"}
    monkeypatch.setenv("AIRFLOW_CONN_BROWSEE_NOKEY", json.dumps(conn))
    missing = r"^Connection 'browsee_nokey' \(Browsee\) is missing its API key \(login\)\.$"
    with pytest.raises(ValueError, match=missing):
        BrowseeHook("browsee_nokey").post_sessions({"from": 0, "limit": 1})
    assert scripted.requests == []


def _bounded(scripted, monkeypatch, hook_class=Peer5Hook, **extra):
    conn = {"conn_type": "peer5", "host": scripted.url, "password": TOKEN, "extra": {"timeout": 5, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_PEER5_BOUNDED", json.dumps(conn))
    return hook_class("peer5_bounded")


@pytest.mark.parametrize(
    ("status", "headers", "extra", "named"),
    [
        (429, {"Retry-After": "21600"}, {}, "21600 s (Retry-After)"),  # the 6-hour pause of issue 22
        (503, {"Retry-After": "7"}, {"max_server_wait": 5}, "7 s (Retry-After)"),
    ],
)
def test_a_server_wait_beyond_the_ceiling_fails_at_once_naming_both(
    scripted, monkeypatch, status, headers, extra, named
):
    hook = _bounded(scripted, monkeypatch, **extra)
    ceiling = extra.get("max_server_wait", 900)
    scripted.queue(
        Reply(status, {"error": True, "message": "come back later"}, headers), Reply(200, {"ok": 1})
    )
    started = time.monotonic()
    with pytest.raises(ServerWaitTooLongError) as info:
        call(hook)
    assert time.monotonic() - started < 1.0 and len(scripted.requests) == 1
    assert info.value.status == status and "come back later" in str(info.value)
    assert f"wait {named}" in str(info.value)
    assert f"the {ceiling} s Connection 'peer5_bounded' (Peer5) allows" in str(info.value)
    started = time.monotonic()
    assert call(hook) == {"ok": 1}  # nobody was paused for the refused wait
    assert time.monotonic() - started < 1.0


def test_a_reset_beyond_the_ceiling_fails_a_429_at_once(scripted, monkeypatch):
    hook = _bounded(scripted, monkeypatch, _EpochHeadersHook, max_server_wait=60)
    reset = int(time.time()) + 3600
    scripted.queue(
        Reply(
            429, {"message": "pool used up"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        )
    )
    with pytest.raises(ServerWaitTooLongError, match=r"wait 3\d{3} s \(rate-limit reset\).* the 60 s"):
        call(hook)
    assert len(scripted.requests) == 1


def test_a_used_up_window_beyond_the_ceiling_keeps_the_answer_and_pauses_nobody(scripted, monkeypatch, logs):
    hook = _bounded(scripted, monkeypatch, _SecondsHeadersHook, max_server_wait=60)
    scripted.queue(
        Reply(200, {"n": 1}, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3600"}),
        Reply(200, {"n": 2}),
    )
    started = time.monotonic()
    assert call(hook) == {"n": 1} and call(hook) == {"n": 2}
    assert time.monotonic() - started < 1.0
    assert "used up for 3600 s, more than the 60 s this connection waits" in logs()


def test_the_async_sender_bounds_server_waits_too(scripted, monkeypatch):
    import asyncio

    import aiohttp

    hook = _bounded(scripted, monkeypatch)
    scripted.queue(Reply(429, {"error": True, "message": "slow down"}, {"Retry-After": "21600"}))

    async def call_async() -> None:
        async with aiohttp.ClientSession() as session:
            await hook.arequest(session, "POST", "/v1/export", json={"from": 0})

    started = time.monotonic()
    with pytest.raises(ServerWaitTooLongError, match="21600 s"):
        asyncio.run(call_async())
    assert time.monotonic() - started < 2.0 and len(scripted.requests) == 1


def test_the_transports_description_of_an_account_shows_no_credential(peer5):
    """The hook hands the transport an ApiAccount; printed or logged, it must not show the key."""
    account = peer5.api_account()
    assert TOKEN in "".join(account.headers.values())
    assert TOKEN not in repr(account) and TOKEN not in str(account)
    assert "max_server_wait=900.0" in repr(account)
