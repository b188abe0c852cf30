"""Every API's declared columns in one list: what the README's "File formats and columns" table shows.

Each API declares its columns beside its hook; this list gathers them for the README only
(``files/`` must not import hooks, so the list lives here). Regenerate the table with
``python -m airflow_provider_analytics_export.hooks.columns`` and paste it between the markers.
"""

from __future__ import annotations

from airflow_provider_analytics_export.files.schemas import Schema, markdown
from airflow_provider_analytics_export.hooks.braze import BRAZE_SESSIONS
from airflow_provider_analytics_export.hooks.browsee import BROWSEE_SESSIONS
from airflow_provider_analytics_export.hooks.openpanel_charts import chart_schema
from airflow_provider_analytics_export.hooks.openpanel_query import OPENPANEL_EVENTS
from airflow_provider_analytics_export.hooks.peer5 import PEER5_EXPORT

#: Every declared schema, for the README's table (a chart shown with one breakdown and previous=True).
SCHEMAS: tuple[Schema, ...] = (
    BROWSEE_SESSIONS,
    BRAZE_SESSIONS,
    PEER5_EXPORT,
    OPENPANEL_EVENTS,
    chart_schema(["<name>"], previous=True),
)


def readme_table() -> str:
    """The README's column tables, generated from the declarations (a test checks they are equal)."""
    return markdown(SCHEMAS)


if __name__ == "__main__":  # python -m airflow_provider_analytics_export.hooks.columns > paste into README
    print(readme_table(), end="")
