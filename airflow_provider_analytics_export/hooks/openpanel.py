"""OpenPanel export API: GET with client id/secret headers, 100 requests per 10 s per client."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from airflow_provider_analytics_export.exceptions import InvalidRequestError
from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

EVENTS_ENDPOINT = "/export/events"
CHARTS_ENDPOINT = "/export/charts"


class OpenPanelHook(AnalyticsApiHook):
    """Talks to OpenPanel's ``/export`` API.

    Connection: login = client id, password = client secret (a ``read`` or ``root``
    client), extra ``project_id`` = the default project. The 100-requests-per-10-s limit is
    shared by every hook on the same client in this process.

    :param openpanel_conn_id: the Airflow connection id (``openpanel_default``).
    """

    conn_name_attr = "openpanel_conn_id"
    default_conn_name = "openpanel_default"
    conn_type = "openpanel"
    hook_name = "OpenPanel"
    api_name = "OpenPanel"
    default_host = "https://api.openpanel.dev"
    request_limit: ClassVar[tuple[int | None, int | None, float] | None] = (None, 100, 10.0)

    def __init__(self, openpanel_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=openpanel_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {
            "openpanel-client-id": self.secret(self.connection.login, "client id (login)"),
            "openpanel-client-secret": self.secret(self.connection.password, "client secret (password)"),
        }

    def project_id(self, project_id: str | None = None) -> str:
        """The given project id, else the connection's default ``project_id``."""
        return self.from_extra(project_id, "project_id")

    def check_connection(self) -> None:
        today = dt.date.today().isoformat()
        params = {"start": today, "end": today, "page": 1, "limit": 1}
        try:
            self.request("GET", EVENTS_ENDPOINT, params={"projectId": self.project_id(), **params})
        except ValueError:
            # No default project: any answer but 401 proves the credentials are accepted.
            try:
                self.request("GET", EVENTS_ENDPOINT, params={"projectId": "connection-test", **params})
            except InvalidRequestError as exc:
                if exc.status != 404:
                    raise
