"""RequestLimit with an injected clock: the sliding window and Retry-After pauses."""

from __future__ import annotations

from airflow_provider_analytics_export.transport.limits import RequestLimit, shared_limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_window_of_the_period_holds_more_than_max_calls():
    clock = FakeClock()
    limit = RequestLimit(max_calls=100, period=10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(350):
        with limit.slot():
            sent.append(clock.now)
    for i in range(len(sent) - 100):
        assert sent[i + 100] - sent[i] >= 10.0
    assert sent[-1] == 30.0  # and no slower than the limit requires


def test_pause_holds_every_caller_until_retry_after():
    clock = FakeClock()
    limit = RequestLimit(max_calls=100, period=10.0, clock=clock, sleep=clock.sleep)
    limit.pause(3.0)
    with limit.slot():
        assert clock.now == 3.0


def test_shared_limit_returns_one_object_per_key():
    first = shared_limit("test|a", lambda: RequestLimit(max_in_flight=1))
    assert shared_limit("test|a", lambda: RequestLimit(max_in_flight=2)) is first
    assert shared_limit("test|b", lambda: RequestLimit(max_in_flight=1)) is not first
