"""OpenLineage facets of every export operator: API endpoint in, destination out, with statistics."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator
from analytics_export_sandbox import SandboxServer

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_analytics_export"

OPERATORS: list[tuple[type, dict[str, Any], str, str]] = [
    (BrowseeSessionsExportOperator, {}, "/api/v1/export/sessions", "jsonl"),
    (BrazeSessionsExportOperator, {}, "/sessions/data_series", "csv"),
    (OpenPanelEventsExportOperator, {}, "/export/events", "jsonl"),
    (OpenPanelChartsExportOperator, {"events": [{"name": "screen_view"}]}, "/export/charts", "csv"),
    (Peer5ExportOperator, {"metrics": ["http"]}, "/v1/export", "csv"),
    (SealmetricsExportOperator, {"export_type": "pages"}, "/api/v1/exports", "csv"),
]


def _operator(cls: type, kwargs: dict[str, Any], destination: str) -> Any:
    with DAG("lineage", schedule=None):
        return cls(task_id="export", destination=destination, **kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "endpoint", "suffix"), OPERATORS, ids=lambda v: getattr(v, "__name__", "")
)
def test_facets_name_the_endpoint_and_the_written_file(
    sandbox: SandboxServer, tmp_path: Path, cls: type, kwargs: dict[str, Any], endpoint: str, suffix: str
) -> None:
    written = tmp_path / "2024-04-14" / f"export.{suffix}"
    operator = _operator(cls, kwargs, f"{tmp_path.as_uri()}/{{{{ ds }}}}/export.{suffix}")
    # What the post-execute hook records from the export's return value (rendered URI, counts).
    operator.export_summary = {"uri": written.as_uri(), "rows": 480, "bytes": 36586, "format": suffix}

    lineage = operator.get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in lineage.inputs] == [(sandbox.url.rstrip("/"), endpoint)]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(written))]
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (480, 36586)


def test_object_store_output_and_named_connection(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BRAZE_EU", '{"conn_type": "braze", "host": "https://rest.fra-02.braze.eu"}'
    )
    operator = _operator(
        BrazeSessionsExportOperator,
        {"braze_conn_id": "braze_eu"},
        "s3://lake/braze/{{ ds }}/sessions.parquet",
    )
    operator.export_summary = {"uri": "s3://lake/braze/2024-04-14/sessions.parquet", "rows": 1, "bytes": 900}

    lineage = operator.get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("https://rest.fra-02.braze.eu", "/sessions/data_series")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("s3://lake", "braze/2024-04-14/sessions.parquet")
    ]


def test_before_the_export_finished_the_destination_is_reported_without_statistics() -> None:
    operator = _operator(
        BrowseeSessionsExportOperator, {"browsee_conn_id": "missing"}, "s3://lake/sessions.jsonl"
    )

    lineage = operator.get_openlineage_facets_on_complete(None)

    # No connection to read the host from: the API's documented default host.
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("https://api.browsee.io", "/api/v1/export/sessions")
    ]
    assert [(d.namespace, d.name, d.outputFacets) for d in lineage.outputs] == [
        ("s3://lake", "sessions.jsonl", {})
    ]


def test_openlineage_provider_is_only_imported_inside_functions() -> None:
    """The package must work without apache-airflow-providers-openlineage installed."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only; TYPE_CHECKING blocks are skipped
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {name}" for name in names if "openlineage" in name]
    assert offenders == []


def test_sealmetrics_download_of_an_existing_job_has_the_same_asset_and_lineage(
    sandbox: SandboxServer,
) -> None:
    from airflow_provider_analytics_export.assets import export_asset
    from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsDownloadExportOperator

    operator = _operator(
        SealmetricsDownloadExportOperator, {"job_id": "{{ ti.xcom_pull('create') }}"}, "s3://lake/p.csv"
    )
    operator.export_summary = {"uri": "s3://lake/p.csv", "rows": 7, "bytes": 70, "job_id": "job-1"}

    lineage = operator.get_openlineage_facets_on_complete(None)

    assert operator.outlets == [export_asset("lineage", "export")]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(sandbox.url.rstrip("/"), "/api/v1/exports")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://lake", "p.csv")]
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == 7
