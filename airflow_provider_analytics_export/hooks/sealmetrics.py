"""Sealmetrics exports API: async jobs (create, poll, download by token URL)."""

from __future__ import annotations

from typing import Any

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

EXPORTS_ENDPOINT = "/api/v1/exports"


class SealmetricsHook(AnalyticsApiHook):
    """Talks to Sealmetrics' ``/api/v1/exports`` API.

    Connection: password = API key (``sm_...``), extra ``site_id`` = the default site.

    :param sealmetrics_conn_id: the Airflow connection id (``sealmetrics_default``).
    """

    conn_name_attr = "sealmetrics_conn_id"
    default_conn_name = "sealmetrics_default"
    conn_type = "sealmetrics"
    hook_name = "Sealmetrics"
    api_name = "Sealmetrics"
    default_host = "https://api.sealmetrics.com"

    def __init__(self, sealmetrics_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=sealmetrics_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.secret(self.connection.password, "API key (password)")}

    def site_id(self, site_id: str | None = None) -> str:
        """The given site id, else the connection's default ``site_id``."""
        return self.from_extra(site_id, "site_id")

    def check_connection(self) -> None:
        self.request("GET", EXPORTS_ENDPOINT, params={"site_id": self.site_id(), "limit": 1})
