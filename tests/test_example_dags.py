"""Example DAGs a user can copy as they are: one file per task, overrides in their own partition.

Parsed with Airflow's DagBag (no database); the e2e tests run them for real.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.execution_time.context import VariableAccessor

from tests.airflow_compat import core_timetable, dag_bag
from tests.e2e.conftest import EXAMPLE_DAGS

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    bag = dag_bag(str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    return bag.dags


def destination_templates(dag: Any) -> Iterator[tuple[str, str]]:
    """(task, destination template) for every file a task writes; mapped tasks once per literal value."""
    for task in dag.tasks:
        if isinstance(task, MappedOperator):
            template, expand = task.partial_kwargs.get("destination"), task.expand_input.value
            if template is None or not isinstance(expand, dict):
                continue  # destinations computed at run time (openpanel_projects_mapped: one per conn id)
            for name, values in expand.items():
                for value in values:
                    yield f"{task.task_id}[{value}]", template.replace(f"{{{{ task.{name} }}}}", str(value))
        elif getattr(task, "destination", None):
            yield task.task_id, task.destination


def test_no_two_example_tasks_write_the_same_file(dags):
    writers = [
        (dag_id, task, template)
        for dag_id, dag in dags.items()
        for task, template in destination_templates(dag)
    ]
    assert len(writers) >= 15
    shared = {template: n for template, n in Counter(template for *_, template in writers).items() if n > 1}
    assert shared == {}, [(dag_id, task) for dag_id, task, template in writers if template in shared]


def render_destination(dag: Any, task_id: str, params: dict[str, Any], interval: bool = True) -> str:
    """The task's destination as a run with these params renders it (without interval: no logical date)."""
    task = dag.get_task(task_id)
    context = {
        "params": {**{key: param.value for key, param in dag.params.items()}, **params},
        "var": {
            "value": VariableAccessor(deserialize_json=False),
            "json": VariableAccessor(deserialize_json=True),
        },
        "task": task,
    }
    if interval:
        context.update(data_interval_start=DAY, data_interval_end=DAY + dt.timedelta(days=1))
    return str(task.render_template(task.destination, context))


def test_braze_override_writes_its_own_partition_not_the_runs_day(dags, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ANALYTICS_EXPORT_ROOT", "s3://lake")
    dag = dags["braze_sessions_daily"]
    daily = render_destination(dag, "export_sessions", {})
    override = render_destination(dag, "export_sessions", {"start": "2024-01-01", "end": "2024-09-30"})
    assert daily == "s3://lake/braze/2024-04-15/sessions.csv"
    assert override == "s3://lake/braze/reexport/2024-01-01_2024-09-30/sessions.csv"
    only_start = render_destination(dag, "export_sessions", {"start": "2024-04-01"})
    assert only_start == "s3://lake/braze/reexport/2024-04-01_2024-04-16/sessions.csv"


def test_a_run_given_a_window_writes_into_a_partition_named_after_it(dags, monkeypatch):
    """Params start/end never overwrite the run's own partition (issue 21): every such DAG does as Braze."""
    import pendulum

    monkeypatch.setenv("AIRFLOW_VAR_ANALYTICS_EXPORT_ROOT", "s3://lake")
    overridable = {dag_id: dag for dag_id, dag in dags.items() if {"start", "end"} <= set(dag.params)}
    assert set(overridable) == {"braze_sessions_daily", "peer5_hourly", "sealmetrics_exports_local_days"}
    day = pendulum.instance(DAY)
    for dag_id, dag in overridable.items():
        for task_id, template in destination_templates(dag):

            def render(params: dict[str, Any], template: str = template, dag: Any = dag) -> str:
                context = {
                    "params": {**{key: param.value for key, param in dag.params.items()}, **params},
                    "var": {"value": VariableAccessor(deserialize_json=False)},
                    "data_interval_start": day,
                    "data_interval_end": day + dt.timedelta(days=1),
                }
                return dag.get_template_env().from_string(template).render(**context)

            own = render({})
            given = render({"start": "2024-03-01", "end": "2024-03-03"})
            assert "reexport" not in own, (dag_id, task_id)
            assert "/reexport/2024-03-01_2024-03-03/" in given, (dag_id, task_id, given)
            assert given.rsplit("/", 1)[1] == own.rsplit("/", 1)[1]  # the same file name, elsewhere


def test_braze_override_needs_no_logical_date_and_a_daily_run_without_one_says_why(dags, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ANALYTICS_EXPORT_ROOT", "s3://lake")
    dag = dags["braze_sessions_daily"]
    override = render_destination(
        dag, "export_sessions", {"start": "2024-01-01", "end": "2024-09-30"}, interval=False
    )
    assert override == "s3://lake/braze/reexport/2024-01-01_2024-09-30/sessions.csv"
    with pytest.raises(ValueError, match="no data interval"):
        render_destination(dag, "export_sessions", {}, interval=False)


def test_dags_test_of_a_chosen_date_exports_the_interval_just_before_it(dags):
    """What the README promises: ``airflow dags test DAG_ID <day after>`` exports that day (daily DAGs)."""
    import pendulum

    chosen = pendulum.instance(DAY + dt.timedelta(days=1))  # Airflow's timetables take pendulum
    clocked = {dag_id: dag for dag_id, dag in dags.items() if not dag.timetable.asset_condition}
    assert set(dags) - set(clocked) == {"browsee_sessions_landed"}  # runs on asset events, not a date
    for dag_id, dag in clocked.items():
        interval = core_timetable(dag.timetable).infer_manual_data_interval(run_after=chosen)
        # The last complete interval before the date: never empty, never a future one.
        assert interval.start < interval.end <= chosen < interval.end + (interval.end - interval.start), (
            dag_id
        )
        if interval.end - interval.start == dt.timedelta(days=1):
            # The day before, in the DAG's own time zone (a Madrid DAG's day starts 22:00/23:00 UTC).
            local_start = interval.start.in_timezone(dag.timezone)
            assert (local_start.date(), local_start.time()) == (DAY.date(), dt.time()), dag_id
