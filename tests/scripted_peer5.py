"""A Peer5 connection to the scripted server, for answers the sandbox never gives (odd CSV)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_analytics_export.hooks import peer5
from tests.scripted_server import Reply, ScriptedServer

CONN_ID = "peer5_scripted"


def connect(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch, now: dt.datetime) -> str:
    """Point ``peer5_scripted`` (one attempt per request) at ``scripted``; the hook's clock says ``now``."""
    monkeypatch.setattr(peer5, "now", lambda: now)
    conn = {"conn_type": "peer5", "host": scripted.url, "password": "token", "extra": {"max_attempts": 1}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID


def csv_reply(text: str) -> Reply:
    """A 200 with ``text`` as Peer5's CSV."""
    return Reply(200, text.encode(), {"Content-Type": "text/csv"})
