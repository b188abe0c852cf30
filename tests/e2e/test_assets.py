"""An export's asset event triggers the consumer DAG, which reads ``rows`` from the event's extra.

``airflow dags test`` has no scheduler, so on Airflow 3.3 the chain is driven step by step
with the public CLI, in a home of its own (it unpauses a DAG and empties the default pool):

1. ``dags reserialize`` + ``dags unpause browsee_sessions_landed``: the consumer is known and
   active, so an event on its asset queues a run for it (asset_dag_run_queue).
2. ``dags test browsee_sessions_daily``: the exports run and post their asset events.
3. ``scheduler --num-runs 1`` with ``default_pool`` at 0 slots: one scheduler loop turns the
   queue entry into an ``asset_triggered`` run holding the events, and queues no task (no
   executor or API server is needed).
4. ``tasks test browsee_sessions_landed check_landed_sessions <that run id>``: the task runs in
   that run, so ``triggering_asset_events`` holds the export's event.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner

from .conftest import EXAMPLE_DAGS, RecordingRunner, assert_no_secret_leaked

PRODUCER, CONSUMER, CHECK = "browsee_sessions_daily", "browsee_sessions_landed", "check_landed_sessions"
JSONL_ASSET = "browsee_sessions_daily.export_sessions_jsonl"


def _query(runner: AirflowRunner, sql: str, *params: str) -> list[tuple]:
    with sqlite3.connect(runner.home / "airflow.db") as db:
        return db.execute(sql, params).fetchall()


@pytest.fixture
def runner(tmp_path: Path, sandbox_reset: SandboxServer) -> Iterator[RecordingRunner]:
    """A home of its own; afterwards its runs are searched for secrets like the shared home's."""
    runner = RecordingRunner(
        home=tmp_path / "home",
        dags_folder=EXAMPLE_DAGS,
        sandbox_url=sandbox_reset.url,
        export_root=(tmp_path / "exports").as_uri(),
    )
    runner.migrate()
    runner.cli("dags", "reserialize")
    runner.cli("dags", "unpause", CONSUMER)
    runner.cli("pools", "set", "default_pool", "0", "tasks run by tasks test only")
    yield runner
    assert_no_secret_leaked(sandbox_reset, runner, runner.outputs)


def test_export_event_triggers_consumer_which_reads_rows(runner: AirflowRunner, tmp_path: Path) -> None:
    produced = runner.dags_test(PRODUCER, "2024-04-15")
    assert "state=success" in produced.stdout + produced.stderr

    # The export's event carries what landed; its rows match the file.
    events = _query(
        runner,
        "SELECT e.extra, e.source_task_id FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = ?",
        JSONL_ASSET,
    )
    assert len(events) == 1
    extra = json.loads(events[0][0])
    landed = tmp_path / "exports" / "browsee" / "2024-04-14" / "sessions.jsonl"
    assert events[0][1] == "export_sessions_jsonl"
    assert extra["uri"] == landed.as_uri()
    assert extra["rows"] == len(landed.read_bytes().splitlines()) > 0
    assert extra["bytes"] == landed.stat().st_size
    assert extra["format"] == "jsonl"
    assert (extra["window_start"], extra["window_end"]) == (
        "2024-04-14T00:00:00+00:00",
        "2024-04-15T00:00:00+00:00",
    )
    assert _query(runner, "SELECT target_dag_id FROM asset_dag_run_queue") == [(CONSUMER,)]

    subprocess.run(
        [runner.airflow, "scheduler", "--num-runs", "1"],
        env=runner.env,
        capture_output=True,
        timeout=180,
        check=True,
    )
    runs = _query(runner, "SELECT run_id, run_type FROM dag_run WHERE dag_id = ?", CONSUMER)
    assert [run_type for _, run_type in runs] == ["asset_triggered"]
    run_id = runs[0][0]
    consumed = _query(
        runner,
        "SELECT e.extra FROM dagrun_asset_event d JOIN asset_event e ON e.id = d.event_id "
        "JOIN dag_run r ON r.id = d.dag_run_id WHERE r.run_id = ?",
        run_id,
    )
    assert [json.loads(row[0]) for row in consumed] == [extra]

    checked = runner.cli("tasks", "test", CONSUMER, CHECK, run_id)
    assert f"{extra['rows']} Browsee sessions landed in {extra['uri']}" in checked.stdout + checked.stderr
    (value,) = _query(
        runner,
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
        CONSUMER,
        run_id,
    )[0]
    assert json.loads(value) == [
        {"uri": extra["uri"], "rows": extra["rows"], "window_start": "2024-04-14T00:00:00+00:00"}
    ]
