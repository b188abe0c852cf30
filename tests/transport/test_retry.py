"""When to send again: Retry-After in both of its forms."""

from __future__ import annotations

import email.utils
import time

from airflow_provider_analytics_export.transport.retry import parse_retry_after


def test_retry_after_http_date_is_understood():
    in_two_seconds = email.utils.formatdate(time.time() + 2, usegmt=True)
    assert 0.5 <= parse_retry_after(in_two_seconds) <= 2.5
    assert parse_retry_after("7") == 7
    assert parse_retry_after("not a date") is None
