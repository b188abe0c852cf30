"""Error answers -> exceptions: the pure mapping both senders use (HTTP behaviour is in tests/hooks)."""

from __future__ import annotations

import pytest

from airflow_provider_analytics_export.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    TransientApiError,
)
from airflow_provider_analytics_export.transport.errors import error_for_status
from airflow_provider_analytics_export.transport.limits import RateLimitHeaders
from airflow_provider_analytics_export.transport.responses import api_error_message

WINDOW = RateLimitHeaders("x-ratelimit-remaining", "x-ratelimit-reset", "seconds")
USED_UP = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "failure", "message": {"error": "API Key missing."}}, "API Key missing."),
        ({"message": "Invalid API key"}, "Invalid API key"),
        ({"error": True, "message": "Invalid auth token"}, "Invalid auth token"),
        ({"detail": [{"loc": ["body", "export_type"], "msg": "bad type"}]}, "bad type"),
        (
            {"error": "Bad Request", "message": "Invalid query parameters", "details": [{"path": ["limit"]}]},
            'Invalid query parameters [{"path": ["limit"]}]',
        ),
    ],
)
def test_api_error_message_understands_every_apis_shape(body, expected):
    assert api_error_message(body, "fallback") == expected


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, InvalidRequestError),
        (429, RateLimitedError),
        (500, TransientApiError),
        (503, TransientApiError),
    ],
)
def test_the_status_decides_the_exception_class(status, error_class):
    error = error_for_status("Peer5", "POST", "/v1/export", status, {"message": "no"}, "reason", {})
    assert type(error) is error_class
    assert str(error) == f"Peer5 POST /v1/export failed (HTTP {status}): no"


def test_only_a_429_waits_for_the_windows_reset_others_only_for_retry_after():
    def wait(status: int, headers: dict[str, str]) -> float | None:
        return error_for_status("OpenPanel", "GET", "/export", status, None, "", headers, WINDOW).retry_after

    assert wait(429, USED_UP) == 30
    assert wait(429, {**USED_UP, "Retry-After": "2"}) == 2
    assert wait(503, USED_UP) is None
    assert wait(503, {**USED_UP, "Retry-After": "3"}) == 3


def test_a_body_without_a_message_shows_the_text_given():
    error = error_for_status("Braze", "GET", "/sessions/data_series", 502, None, "Bad Gateway", {})
    assert error.api_message == "Bad Gateway"
