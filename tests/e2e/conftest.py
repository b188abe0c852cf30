"""Run the example DAGs with real Airflow (``airflow dags test``, SQLite) against the sandbox.

Every test that runs Airflow through ``airflow_runner``/``airflow_run`` is also a secrets check:
after it, its CLI output, the home's logs and metadata database (xcom, rendered fields, task
instances...) and every URL the sandbox received are searched for each sandbox credential and
each Sealmetrics download token handed out. The e2e runs are the corpus, so no second set of
example-DAG runs is needed for the scan (it used to cost its own 81 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

import pytest

from analytics_export_sandbox import CREDENTIALS, SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
#: Not secrets: identifiers that legitimately appear in requests and logs.
NOT_SECRET = {"project_id", "account_id"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


class RecordingRunner(AirflowRunner):
    """An AirflowRunner that keeps every CLI output: the task logs ``dags test`` prints.

    Its homes start from a copy of one migrated, empty metadata database per test process (see
    ``_migrated_template``): ``airflow db migrate`` is an Airflow start-up plus seconds of DDL, and
    the e2e tests make about ten homes. Outside pytest (no template) it migrates as usual.
    """

    #: Where this process's migrated empty database is (or will be) kept; None: migrate each home.
    template_home: ClassVar[Path | None] = None

    def __init__(self, home: Path, dags_folder: Path, sandbox_url: str, export_root: str) -> None:
        super().__init__(home, dags_folder, sandbox_url, export_root)
        self.outputs: list[str] = []

    def migrate(self) -> None:
        """The template database copied in (made on first use), then this home's DAGs registered."""
        template = self.template_home
        if template is None:
            super().migrate()
            return
        if not (template / "airflow.db").exists():
            empty = template / "dags"
            empty.mkdir(parents=True, exist_ok=True)
            AirflowRunner(template, empty, "http://127.0.0.1:9", template.as_uri()).cli("db", "migrate")
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / "airflow.db", self.home / "airflow.db")
        self.cli("dags", "reserialize")

    def cli(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = super().cli(*args, env=env, check=False)
        self.outputs.append(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result


def sandbox_secrets() -> dict[str, str]:
    """Every sandbox credential by name (``api.field``), identifiers excepted."""
    return {
        f"{api}.{field}": value
        for api, fields in CREDENTIALS.items()
        for field, value in fields.items()
        if field not in NOT_SECRET
    }


def _database_text(db: Path) -> str:
    """Every row of every table, as ``table: value`` lines (blobs decoded leniently)."""
    chunks = []
    with sqlite3.connect(db) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):  # noqa: S608 - table names from sqlite
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    chunks.append(f"{table}: {value}")
    return "\n".join(chunks)


def assert_no_secret_leaked(sandbox: SandboxServer, runner: RecordingRunner, outputs: list[str]) -> None:
    """No credential or download token in ``outputs``, the runner's home (logs, database) or any URL.

    Called before the sandbox is reset: its request log and handed-out tokens are still there.
    """
    tokens = list(sandbox.state["sealmetrics"]["tokens"])
    secrets = {**sandbox_secrets(), **{f"download token {i}": t for i, t in enumerate(tokens)}}
    places = {f"CLI output {i}": text for i, text in enumerate(outputs)}
    for path in (runner.home / "logs").rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    database = _database_text(runner.home / "airflow.db")
    places["metadata database"] = database
    if any("dags test" in text or "new_state=" in text for text in outputs):
        assert "\ntask_instance: " in database, "no task instance stored: the search would prove nothing"
    leaks = [
        f"{name} in {where}"
        for name, value in secrets.items()
        for where, text in places.items()
        if value in text
    ]
    # Credentials travel in headers or bodies only. The log shows a download path as
    # /download/<token>, so a token seen in any logged path or query is one sent elsewhere.
    for entry in sandbox.requests_log:
        line = unquote(f"{entry['method']} {entry['path']}?{entry['query']}")
        leaks += [f"{name} in URL {line}" for name, value in secrets.items() if value in line]
    assert leaks == []


@pytest.fixture(scope="session", autouse=True)
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Where RecordingRunner keeps this process's template database (made only if an e2e needs a home)."""
    RecordingRunner.template_home = tmp_path_factory.mktemp("airflow-template-home")
    yield
    RecordingRunner.template_home = None


@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local directory behind the ``analytics_export_root`` Variable the example DAGs write under."""
    return tmp_path_factory.mktemp("exports")


def migrated_runner(
    home: Path, dags_folder: Path, sandbox: SandboxServer, export_root: Path
) -> RecordingRunner:
    """A migrated Airflow home in ``home`` running ``dags_folder`` against ``sandbox``, its outputs kept."""
    runner = RecordingRunner(
        home=home, dags_folder=dags_folder, sandbox_url=sandbox.url, export_root=export_root.as_uri()
    )
    runner.migrate()
    return runner


@contextmanager
def scanned(runner: RecordingRunner, sandbox: SandboxServer) -> Iterator[RecordingRunner]:
    """``runner`` for one test; afterwards the runs it made are searched for secrets."""
    first = len(runner.outputs)
    yield runner
    assert_no_secret_leaked(sandbox, runner, runner.outputs[first:])


@pytest.fixture(scope="session")
def _airflow_home(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, export_root: Path
) -> RecordingRunner:
    return migrated_runner(tmp_path_factory.mktemp("airflow-home"), EXAMPLE_DAGS, sandbox, export_root)


@pytest.fixture
def airflow_runner(_airflow_home: RecordingRunner, sandbox_reset: SandboxServer) -> Iterator[RecordingRunner]:
    """The session's migrated Airflow home; after the test, its runs are searched for secrets."""
    with scanned(_airflow_home, sandbox_reset) as runner:
        yield runner


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


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a service started with ``start_new_session=True`` and every process of its group.

    SIGTERM first (a clean shutdown); then SIGKILL to the group in any case: a worker that outlives
    its parent (a uvicorn worker did) would otherwise run on after the test, holding its port.
    """
    os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with suppress(ProcessLookupError):  # the whole group is gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
