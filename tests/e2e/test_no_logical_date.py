"""A run with no logical date (what the REST API / UI Trigger dialog create), run by real Airflow.

``airflow dags test`` always sets a logical date, so the run is made with
``dag.test(logical_date=None)`` on the DAG as the dags-folder bundle holds it, in the
runner's throwaway home: the same task runner, template context and failure handling.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analytics_export_sandbox import SandboxServer

from .conftest import RecordingRunner

RUN_WITHOUT_LOGICAL_DATE = """
import json, os, sys
from tests.airflow_compat import DagBag

dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(sys.argv[1])
run = dag.test(logical_date=None, run_conf=json.loads(sys.argv[2]))
print("RUN STATE", run.state, "LOGICAL DATE", run.logical_date)
"""


def run_without_logical_date(runner: RecordingRunner, dag_id: str, conf: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_LOGICAL_DATE, dag_id, json.dumps(conf)],
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    runner.outputs.append(output)  # searched for secrets after the test (conftest.py)
    assert "LOGICAL DATE None" in output, output[-4000:]
    return output


def test_daily_run_without_logical_date_fails_with_the_clear_message_only(
    airflow_runner: RecordingRunner, sandbox_reset: SandboxServer
) -> None:
    output = run_without_logical_date(airflow_runner, "browsee_sessions_daily", {})
    assert "RUN STATE failed" in output
    assert "ValueError: This run has no data interval: it was triggered without a logical date" in output
    assert "jinja2.exceptions.UndefinedError" not in output  # no bare Jinja traceback
    assert sandbox_reset.requests_log == []  # failed before any request


def test_braze_reexport_needs_no_logical_date_and_lands_in_its_own_partition(
    airflow_runner: RecordingRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    output = run_without_logical_date(
        airflow_runner, "braze_sessions_daily", {"start": "2024-02-01", "end": "2024-02-08"}
    )
    assert "RUN STATE success" in output, output[-4000:]
    lines = (export_root / "braze" / "reexport" / "2024-02-01_2024-02-08" / "sessions.csv").read_text()
    assert len(lines.splitlines()) == 1 + 7  # header and one row per day
    assert "Export written: " in output and "rows=7 " in output
