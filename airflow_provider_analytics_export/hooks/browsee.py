"""Browsee session export API: POST with the keys in the JSON body, one open request at a time."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

SESSIONS_ENDPOINT = "/api/v1/export/sessions"


class BrowseeHook(AnalyticsApiHook):
    """Talks to Browsee's ``export/sessions`` API.

    Connection: login = project API key, password = secret key. Browsee allows one open
    request per account, so every hook on the same account in this process shares one slot.

    :param browsee_conn_id: the Airflow connection id (``browsee_default``).
    """

    conn_name_attr = "browsee_conn_id"
    default_conn_name = "browsee_default"
    conn_type = "browsee"
    hook_name = "Browsee"
    api_name = "Browsee"
    default_host = "https://api.browsee.io"
    request_limit: ClassVar[tuple[int | None, int | None, float] | None] = (1, None, 0.0)

    def __init__(self, browsee_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=browsee_conn_id, **kwargs)

    def credentials_body(self) -> dict[str, str]:
        """The body fields that authenticate a call (Browsee takes keys in the body, not headers)."""
        return {
            "apiKey": self.secret(self.connection.login, "API key (login)"),
            "secretKey": self.secret(self.connection.password, "secret key (password)"),
        }

    def post_sessions(self, body: dict[str, Any]) -> dict[str, Any]:
        """One raw ``export/sessions`` call; ``body`` holds everything but the credentials."""
        return self.request("POST", SESSIONS_ENDPOINT, json={**self.credentials_body(), **body})

    def check_connection(self) -> None:
        now = int(time.time())
        self.post_sessions({"start": now - 3600, "end": now, "from": 0, "limit": 1})
