"""Braze ``/sessions/data_series``: GET with a bearer key on the instance's own REST host."""

from __future__ import annotations

from typing import Any

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

DATA_SERIES_ENDPOINT = "/sessions/data_series"


class BrazeHook(AnalyticsApiHook):
    """Talks to Braze's sessions analytics API.

    Connection: host = the instance REST endpoint (required, e.g.
    ``https://rest.iad-01.braze.com``), password = REST API key with the
    ``sessions.data_series`` permission.

    :param braze_conn_id: the Airflow connection id (``braze_default``).
    """

    conn_name_attr = "braze_conn_id"
    default_conn_name = "braze_default"
    conn_type = "braze"
    hook_name = "Braze"
    api_name = "Braze"
    default_host = None

    def __init__(self, braze_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=braze_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret(self.connection.password, 'REST API key (password)')}"}

    def check_connection(self) -> None:
        self.request("GET", DATA_SERIES_ENDPOINT, params={"length": 1, "unit": "day"})
