"""Run DAGs with real Airflow in a throwaway AIRFLOW_HOME (SQLite), pointed at a sandbox.

Used by the e2e tests and ``make demo``; also handy in users' own CI to run their DAGs
against the sandbox. Standard library only: Airflow is driven through its CLI, in
subprocesses, exactly as a scheduler-less ``airflow dags test`` would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .credentials import connection_env


class AirflowRunner:
    """A migrated, throwaway Airflow home whose connections point at a sandbox.

    :param home: directory for AIRFLOW_HOME (SQLite database, logs).
    :param dags_folder: folder with the DAG files to run.
    :param sandbox_url: base URL of a running sandbox; every ``*_default`` connection points at it.
    :param export_root: URL stored in the ``analytics_export_root`` Variable the example DAGs write under.
    """

    def __init__(self, home: Path, dags_folder: Path, sandbox_url: str, export_root: str) -> None:
        self.home = Path(home)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW_VAR_ANALYTICS_EXPORT_ROOT": export_root,
            **connection_env(sandbox_url),
        }
        self.airflow = str(Path(sys.executable).with_name("airflow"))

    def migrate(self) -> None:
        """Create the metadata database (a few seconds on SQLite) and register the DAGs in it.

        Registering (``dags reserialize``, what a DAG processor does) records the DAGs' assets:
        Airflow 3.0's ``dags test`` fails a task whose outlets are not registered.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        self.cli("dags", "reserialize")

    def cli(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command in this home; output captured as text."""
        result = subprocess.run(
            [self.airflow, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def dags_test(
        self, dag_id: str, logical_date: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``airflow dags test DAG_ID DATE``: one full DAG run, triggers (deferrals) included."""
        return self.cli("dags", "test", dag_id, logical_date, env=env, check=check)
