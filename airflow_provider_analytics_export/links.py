"""Operator extra links: from an export task to the service's own page for the exported data.

Only services with a documented or derivable URL have one: Braze (its dashboard, derived
from the REST endpoint's instance) and Browsee (the segment list, the page its docs send
you to for segment ids). OpenPanel's dashboard URL needs the organization slug, which no
connection field holds; Peer5 and Sealmetrics document no dashboard URL.

Airflow 3 computes links on the worker when the task finishes and stores them as XCom,
so links may read the task's connection.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: Where Browsee's docs send you to find a segment id: the segment list of the Browsee app.
BROWSEE_SEGMENTS_URL = "https://browsee.io/app/circleslist"
#: Braze REST endpoint host -> dashboard URL: US/EU clusters are numbered, AU/ID named.
BRAZE_DASHBOARDS = (
    (re.compile(r"^rest\.(?:iad|fra)-(\d{2})\.braze\.(com|eu)$"), r"https://dashboard-\1.braze.\2"),
    (re.compile(r"^rest\.((?:au|id)-\d{2})\.braze\.com$"), r"https://dashboard.\1.braze.com"),
)


def braze_dashboard_url(rest_host: str) -> str:
    """The dashboard of the Braze instance behind a REST endpoint, or "" for an unknown host."""
    host = re.sub(r"^https?://", "", rest_host.strip()).split("/")[0].lower()
    for pattern, dashboard in BRAZE_DASHBOARDS:
        if pattern.match(host):
            return pattern.sub(dashboard, host)
    return ""


class BrazeDashboardLink(BaseOperatorLink):
    """The dashboard of the Braze instance the task's connection points at."""

    name = "Braze dashboard"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_provider_analytics_export.hooks.braze import BrazeHook

        conn_id: Any = getattr(operator, "braze_conn_id", None) or BrazeHook.default_conn_name
        return braze_dashboard_url(BrazeHook(conn_id).connection.host or "")


class BrowseeSegmentsLink(BaseOperatorLink):
    """Browsee's segment list, where each segment's analytics (and its id) are found."""

    name = "Browsee segments"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return BROWSEE_SEGMENTS_URL
