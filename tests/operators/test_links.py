"""Extra links: Braze's dashboard from the connection's REST endpoint, Browsee's segment list."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import DAG, BaseOperatorLink

from airflow_provider_analytics_export import get_provider_info
from airflow_provider_analytics_export.links import (
    BROWSEE_SEGMENTS_URL,
    BrazeDashboardLink,
    BrowseeSegmentsLink,
    braze_dashboard_url,
)
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from tests.airflow_compat import TaskInstanceKey

KEY = TaskInstanceKey(dag_id="links", task_id="export", run_id="manual__1", try_number=1)


def _operator(cls: type, **kwargs: Any) -> Any:
    with DAG("links", schedule=None):
        return cls(task_id="export", destination="memory://exports/{{ ds }}.jsonl", **kwargs)


@pytest.mark.parametrize(
    ("rest_endpoint", "dashboard"),
    [
        ("https://rest.iad-01.braze.com", "https://dashboard-01.braze.com"),
        ("rest.iad-08.braze.com", "https://dashboard-08.braze.com"),
        ("https://rest.fra-02.braze.eu/", "https://dashboard-02.braze.eu"),
        ("https://REST.AU-01.braze.com", "https://dashboard.au-01.braze.com"),
        ("https://rest.id-01.braze.com", "https://dashboard.id-01.braze.com"),
        ("http://127.0.0.1:8080", ""),  # a sandbox or proxy: no dashboard to guess
        ("https://rest.braze.example.com", ""),
    ],
)
def test_braze_dashboard_is_derived_from_the_rest_endpoint(rest_endpoint: str, dashboard: str) -> None:
    assert braze_dashboard_url(rest_endpoint) == dashboard


def test_braze_link_reads_the_tasks_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BRAZE_EU", '{"conn_type": "braze", "host": "https://rest.fra-01.braze.eu"}'
    )
    operator = _operator(BrazeSessionsExportOperator, braze_conn_id="braze_eu")
    [link] = [link for link in operator.operator_extra_links if isinstance(link, BrazeDashboardLink)]
    assert link.name == "Braze dashboard"
    assert link.get_link(operator, ti_key=KEY) == "https://dashboard-01.braze.eu"


def test_browsee_operator_links_to_the_segment_list() -> None:
    operator = _operator(BrowseeSessionsExportOperator)
    [link] = [link for link in operator.operator_extra_links if isinstance(link, BrowseeSegmentsLink)]
    assert link.name == "Browsee segments"
    assert link.get_link(operator, ti_key=KEY) == BROWSEE_SEGMENTS_URL == "https://browsee.io/app/circleslist"


def test_every_link_class_is_registered_for_the_api_server() -> None:
    """Airflow 3's API server only loads extra links listed in the provider info."""
    from airflow_provider_analytics_export import links

    registered = get_provider_info()["extra-links"]
    defined = [
        f"{links.__name__}.{name}"
        for name, value in vars(links).items()
        if isinstance(value, type) and issubclass(value, BaseOperatorLink) and value is not BaseOperatorLink
    ]
    assert sorted(registered) == sorted(defined)


def test_links_survive_dag_serialization() -> None:
    """What the API server sees: the link by name, read back from the XCom the worker stores."""
    from tests.airflow_compat import DagSerialization

    with DAG("links", schedule=None) as dag:
        BrowseeSessionsExportOperator(task_id="export", destination="memory://exports/{{ ds }}.jsonl")
    task = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).get_task("export")
    assert [(link.name, link.xcom_key) for link in task.operator_extra_links] == [
        ("Browsee segments", BrowseeSegmentsLink().xcom_key)
    ]
