"""Export tasks declare an asset and attach what landed to its event."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_analytics_export.assets import export_asset, record_export_event
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator

SUMMARY = {
    "uri": "s3://lake/browsee/2024-04-14/sessions.jsonl",
    "rows": 480,
    "bytes": 289893,
    "format": "jsonl",
    "pages": 5,
    "window_start": "2024-04-14T00:00:00+00:00",
    "window_end": "2024-04-15T00:00:00+00:00",
}
EXTRA = {key: value for key, value in SUMMARY.items() if key != "pages"}


def _export(**kwargs: Any) -> BrowseeSessionsExportOperator:
    with DAG("browsee_daily", schedule=None):
        return BrowseeSessionsExportOperator(
            task_id="sessions", destination="s3://lake/browsee/{{ ds }}/sessions.jsonl", **kwargs
        )


def _post_execute(operator: BrowseeSessionsExportOperator, result: Any) -> OutletEventAccessors:
    events = OutletEventAccessors()
    operator._post_execute_hook(
        {"task": operator, "outlet_events": events}, result
    )  # as the task runner does
    return events


def test_default_outlet_is_the_tasks_export_asset() -> None:
    operator = _export()
    assert operator.outlets == [export_asset("browsee_daily", "sessions")]
    assert operator.outlets[0].name == "browsee_daily.sessions"
    assert operator.outlets[0].uri == "x-analytics-export://browsee_daily/sessions"


def test_event_extra_says_what_landed_and_the_summary_is_kept_for_lineage() -> None:
    operator = _export()
    events = _post_execute(operator, SUMMARY)
    assert events[operator.outlets[0]].extra == EXTRA
    assert operator.export_summary == SUMMARY


def test_given_outlets_replace_the_default_and_an_alias_gets_the_rendered_file() -> None:
    mine, alias = Asset("s3://lake/browsee"), AssetAlias("browsee-files")
    operator = _export(outlets=[mine, alias])
    assert operator.outlets == [mine, alias]

    events = _post_execute(operator, SUMMARY)

    assert events[mine].extra == EXTRA
    [alias_event] = events[alias].asset_alias_events
    assert alias_event.dest_asset_key.uri == SUMMARY["uri"]
    assert alias_event.extra == EXTRA


def test_empty_outlets_opt_out_and_a_users_post_execute_still_runs() -> None:
    seen = []
    operator = _export(outlets=[], post_execute=lambda context, result: seen.append(result))
    assert operator.outlets == []
    _post_execute(operator, SUMMARY)
    assert seen == [SUMMARY]


def test_a_result_that_is_not_an_export_summary_adds_no_event_extra() -> None:
    operator = _export()
    events = OutletEventAccessors()
    record_export_event({"task": operator, "outlet_events": events}, "job-123")  # type: ignore[typeddict-item]
    assert events[operator.outlets[0]].extra == {}
    assert operator.export_summary is None


def test_mapped_exports_declare_their_asset_at_parse_time() -> None:
    from airflow.sdk import TaskGroup

    from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator
    from tests.airflow_compat import DagSerialization

    with DAG("sealmetrics_daily", schedule=None) as dag, TaskGroup("exports"):
        SealmetricsExportOperator.partial(
            task_id="export", destination="memory://x/{{ task.export_type }}.csv"
        ).expand(export_type=["pages", "sources"])
    # The scheduler only records events for assets a serialized DAG declares (as producer edges).
    edges = DagSerialization.serialize_dag(dag)["dag_dependencies"]
    assert [(edge["source"], edge["target"], edge["label"]) for edge in edges] == [
        ("sealmetrics_daily", "asset", "sealmetrics_daily.exports.export")
    ]
    assert export_asset("sealmetrics_daily", "exports.export").uri in edges[0]["dependency_id"]
