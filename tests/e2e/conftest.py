"""Run the example DAGs with real Airflow (``airflow dags test``, SQLite) against the sandbox."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local directory behind the ``analytics_export_root`` Variable the example DAGs write under."""
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def airflow_runner(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, export_root: Path
) -> AirflowRunner:
    runner = AirflowRunner(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=EXAMPLE_DAGS,
        sandbox_url=sandbox.url,
        export_root=export_root.as_uri(),
    )
    runner.migrate()
    return runner


@pytest.fixture
def airflow_run(airflow_runner: AirflowRunner) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``airflow_run(dag_id, logical_date, check=True, **env)`` → the finished CLI process.

    With check=True a DAG run that failed, or ran no task, raises with the tail of Airflow's output.
    """

    def run(
        dag_id: str, logical_date: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = airflow_runner.dags_test(dag_id, logical_date, env=env, check=check)
        output = result.stdout + result.stderr
        # A logical date before the DAG's start_date "succeeds" without running any task: require
        # that tasks really ran and none failed.
        ran = "new_state=success" in output and "new_state=failed" not in output
        if check and not ("state=success" in output and ran):
            raise AssertionError(f"DAG {dag_id} did not succeed:\n{output[-6000:]}")
        return result

    return run
