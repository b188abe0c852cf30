"""Browsee's configured latency runs from arrival to answer, the sandbox's own work inside it (issue 25)."""

from __future__ import annotations

import time

import requests

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.browsee import _browsee_segment_day

from .conftest import BROWSEE_AUTH

DAY0 = 1_713_139_200  # 2024-04-15
LATENCY_S = 3.0
SESSIONS = 20_011  # a day whose segment no other test has computed (the computation is cached)


def test_the_sandboxs_own_work_runs_inside_the_latency(sbx: SandboxServer, http: requests.Session) -> None:
    """A page costs the latency, not the latency plus this test double's Python (issue 25's bound).

    A segment's first request computes the whole day's membership: about as long as the same
    computation for a day of another size, timed here first.
    """
    started = time.monotonic()
    _browsee_segment_day(sbx.config.seed, SESSIONS + 2, DAY0 // 86_400, "seg-mobile")
    work = time.monotonic() - started
    assert work >= 0.3, f"the segment took {work:.2f} s: too little work to tell anything"
    sbx.config.update(
        {"browsee_sessions_per_day": SESSIONS, "latency_ms": {"browsee": int(LATENCY_S * 1000)}}
    )
    body = {**BROWSEE_AUTH, "start": DAY0, "end": DAY0 + 86_400, "limit": 100, "segmentId": "seg-mobile"}
    started = time.monotonic()
    answer = http.post(sbx.url + "/api/v1/export/sessions", json=body)
    took = time.monotonic() - started
    assert answer.status_code == 200 and len(answer.json()["exports"]["data"]) == 100
    assert LATENCY_S <= took < LATENCY_S + work / 2, (
        f"{took:.2f} s for {LATENCY_S} s of latency, {work:.2f} s of work"
    )
    (entry,) = [e for e in sbx.requests_log if e["api"] == "browsee"]
    assert entry["ended"] - entry["started"] >= LATENCY_S


def test_an_answer_is_not_late_by_the_wake_up_of_its_thread(monkeypatch) -> None:
    """A sleep ends when its thread gets a core again (here 1 ms late, as on a busy machine):
    the sandbox wakes before the moment, so that lateness is not added to the latency it models."""
    from analytics_export_sandbox import server

    now = [100.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds + (0.001 if seconds > 0 else 0.00001)  # a long sleep wakes late

    monkeypatch.setattr(server.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(server.time, "sleep", sleep)
    server._sleep_until(100.1)
    assert 100.1 <= now[0] < 100.1 + 0.0001
