"""Peer5 ``/v1/export``: POST time series with an ``X-Auth-Token`` header."""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

EXPORT_ENDPOINT = "/v1/export"
DAY_MS = 86_400_000


class Peer5Hook(AnalyticsApiHook):
    """Talks to Peer5's export API.

    Connection: password = auth token.

    :param peer5_conn_id: the Airflow connection id (``peer5_default``).
    """

    conn_name_attr = "peer5_conn_id"
    default_conn_name = "peer5_default"
    conn_type = "peer5"
    hook_name = "Peer5"
    api_name = "Peer5"
    default_host = "https://control.peer5.com"

    def __init__(self, peer5_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=peer5_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.secret(self.connection.password, "auth token (password)")}

    def check_connection(self) -> None:
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        body = {"from": today - DAY_MS, "to": today, "interval": "1d", "metrics": ["sessions"]}
        self.request("POST", EXPORT_ENDPOINT, params={"format": "json"}, json=body)
