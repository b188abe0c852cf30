"""Real parallelism: a scheduler with LocalExecutor runs eight exports on two accounts at once, no pools.

With no configuration (the machine-wide limit) and with the Redis backend (a real redis-server),
the sandbox's rule counters must stay at zero: no second open Browsee request, no OpenPanel
request past 100 per 10 s; every file exact.

Airflow 3 runs LocalExecutor on SQLite (``airflow standalone`` does the same): tasks talk to the
API server's execution API, not to the database, so the usual "SQLite means one task at a time"
does not apply; the test checks that at least four tasks really ran at the same time.

``python -m tests.e2e.test_shared_limits [REDIS_URL]`` runs the same DAG and prints its numbers
(requests, rule breaks, seconds), machine-wide or on the given Redis.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_analytics_export.transport.machine_limits import LIMITS_DIR_ENV
from analytics_export_sandbox import SandboxServer, connection_env
from analytics_export_sandbox.airflow_runner import AirflowRunner
from analytics_export_sandbox.browsee import browsee_sessions
from analytics_export_sandbox.openpanel import openpanel_events
from tests.conftest import _free_port, _wait_for_port
from tests.e2e.conftest import RecordingRunner, stop_group
from tests.e2e.shared_limits_dags.shared_limits import BROWSEE_DAYS, OPENPANEL_DAY, OPENPANEL_PROJECTS
from tests.e2e.shared_limits_dags.shared_limits import DAGS as SHARED_DAGS

DAGS = Path(__file__).resolve().parent / "shared_limits_dags"
#: Backend -> its DAG (the two differ in their connections only: tests/e2e/shared_limits_dags).
DAG_ID = dict(zip(("machine-wide", "redis"), SHARED_DAGS, strict=True))
PARALLELISM = 8
UTC = dt.timezone.utc


@dataclass
class Outcome:
    state: str
    requests: list[dict[str, Any]]
    max_running: int
    seconds: float

    def violations(self) -> dict[str, int]:
        """Rule breaks the sandbox saw: second open Browsee requests and OpenPanel 429s."""
        browsee = [e for e in self.requests if e["api"] == "browsee"]
        openpanel = [e for e in self.requests if e["api"] == "openpanel"]
        return {
            "browsee_overlaps": sum(1 for e in browsee if e["overlap"]),
            "browsee_429": sum(1 for e in browsee if e["status"] == 429),
            "openpanel_429": sum(1 for e in openpanel if e["status"] == 429),
        }


def connections(sandbox: SandboxServer, redis_url: str | None) -> dict[str, str]:
    """The sandbox's default connections; with ``redis_url``, Browsee's and OpenPanel's ``*_redis``
    twins too (``limit_backend`` set), the connections ``shared_limits_redis`` uses."""
    values = connection_env(sandbox.url)
    if redis_url is not None:
        for api in ("BROWSEE", "OPENPANEL"):
            conn = json.loads(values[f"AIRFLOW_CONN_{api}_DEFAULT"])
            conn["extra"] = {**conn.get("extra", {}), "limit_backend": redis_url}
            values[f"AIRFLOW_CONN_{api}_REDIS"] = json.dumps(conn)
    return values


@contextmanager
def services(runner: AirflowRunner, env: dict[str, str]) -> Iterator[None]:
    """API server, DAG processor and scheduler (LocalExecutor) of ``runner``'s home, then stopped."""
    port = int(env["AIRFLOW__API__PORT"])
    procs = [
        subprocess.Popen(
            [runner.airflow, *command],
            env={**runner.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=(runner.home / f"{command[0]}.log").open("w"),
            start_new_session=True,  # a group of its own: stopping it stops its task processes too
        )
        for command in (["api-server", "--port", str(port)], ["dag-processor"], ["scheduler"])
    ]
    try:
        _wait_for_port(port, seconds=120)
        yield
    finally:
        for proc in procs:
            stop_group(proc)


def query(runner: AirflowRunner, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(runner.home / "airflow.db", timeout=30) as db:
        return db.execute(sql, args).fetchall()


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what} after {seconds} s")


def max_running(runner: AirflowRunner, dag_id: str) -> int:
    """The most task instances of ``dag_id`` running at one moment (Airflow's own start/end dates)."""
    spans = query(runner, "SELECT start_date, end_date FROM task_instance WHERE dag_id = ?", dag_id)
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


class Deployment:
    """One Airflow deployment (API server, DAG processor, scheduler) with both DAGs serialized."""

    def __init__(self, runner: AirflowRunner, export_root: Path) -> None:
        self.runner = runner
        self.export_root = export_root

    def run(self, dag_id: str, sandbox: SandboxServer) -> Outcome:
        """One triggered run of ``dag_id`` by the scheduler; the sandbox's log of it alone."""
        sandbox.config.update({"latency_ms": {"browsee": 30}})
        sandbox.reset()
        self.runner.cli("dags", "trigger", dag_id)
        started = time.monotonic()
        state = wait_for(
            lambda: next(
                (
                    s
                    for (s,) in query(self.runner, "SELECT state FROM dag_run WHERE dag_id = ?", dag_id)
                    if s in ("success", "failed")
                ),
                None,
            ),
            600,
            f"the {dag_id} run has not finished",
        )
        seconds = time.monotonic() - started
        return Outcome(state, list(sandbox.requests_log), max_running(self.runner, dag_id), seconds)


@contextmanager
def deployment(
    home: Path, sandbox: SandboxServer, export_root: Path, redis_url: str | None
) -> Iterator[Deployment]:
    """Both backends' DAGs in one deployment: its start-up (migrate, three services, parsing) is the
    e2e's biggest cost, and nothing in it differs between the backends but the connections."""
    runner = RecordingRunner(home, DAGS, sandbox.url, export_root.as_uri())
    port = _free_port()
    env = {
        **connections(sandbox, redis_url),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "shared-limits-e2e-only",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The machine-wide limit's state of this deployment's tasks alone.
        LIMITS_DIR_ENV: str(home / "limits"),
    }
    runner.env.update(env)
    runner.migrate()
    with services(runner, env):
        wait_for(
            lambda: (
                {dag_id for (dag_id,) in query(runner, "SELECT dag_id FROM serialized_dag")}
                >= set(SHARED_DAGS)
            ),
            300,
            "the DAG processor has not serialized the DAGs",
        )
        yield Deployment(runner, export_root)


def run_dag(home: Path, sandbox: SandboxServer, export_root: Path, backend: str | None) -> Outcome:
    """One run on a deployment of its own: machine-wide, or on the Redis at ``backend``."""
    with deployment(home, sandbox, export_root, backend) as airflow:
        return airflow.run(DAG_ID["redis" if backend else "machine-wide"], sandbox)


def assert_files_exact(sandbox: SandboxServer, root: Path) -> None:
    for project in OPENPANEL_PROJECTS:
        got = [
            json.loads(line) for line in (root / "openpanel" / f"{project}.jsonl").read_text().splitlines()
        ]
        assert got == list(openpanel_events(sandbox.config, project, OPENPANEL_DAY, OPENPANEL_DAY)), project
    for day in BROWSEE_DAYS:
        start = int(dt.datetime.combine(day, dt.time(), UTC).timestamp())
        got = [json.loads(line) for line in (root / "browsee" / f"{day}.jsonl").read_text().splitlines()]
        # jsonl keeps the sessions as Browsee sent them (issue 17: no `_extra`, no added nulls).
        assert got == list(browsee_sessions(sandbox.config, start, start + 86_400)), day
    assert not list(root.rglob("*.partial"))


@pytest.fixture(scope="module")
def airflow(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    """The module's deployment; without a redis-server (locally) it runs the machine-wide DAG only."""
    try:
        redis_url: str | None = request.getfixturevalue("redis_server")
    except pytest.skip.Exception:
        redis_url = None
    with deployment(
        tmp_path_factory.mktemp("shared-home"), sandbox, tmp_path_factory.mktemp("shared-exports"), redis_url
    ) as airflow:
        yield airflow


@pytest.mark.timeout(900)  # the first test also pays the deployment: migrate, three services, parsing
@pytest.mark.parametrize("backend", ["machine-wide", "redis"])
def test_eight_parallel_exports_keep_both_accounts_within_their_rules(
    airflow: Deployment, sandbox_reset: SandboxServer, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "redis":
        request.getfixturevalue("redis_url")  # skips without a redis-server (fails in CI); emptied
    dag_id = DAG_ID[backend]
    outcome = airflow.run(dag_id, sandbox_reset)
    assert outcome.state == "success"
    assert outcome.max_running >= 4  # real parallelism, not one task after another
    assert outcome.violations() == {"browsee_overlaps": 0, "browsee_429": 0, "openpanel_429": 0}
    openpanel = sorted(e["started"] for e in outcome.requests if e["api"] == "openpanel")
    # Several windows' worth: the limit had to hold, not just exist. The sandbox counts OpenPanel's
    # fixed windows as the server does (its 429s above), not any 10 s span: windows may abut.
    assert len(openpanel) > 200
    assert_files_exact(sandbox_reset, airflow.export_root / "shared" / dag_id)


if __name__ == "__main__":  # python -m tests.e2e.test_shared_limits [REDIS_URL]: numbers for the docs
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder, SandboxServer() as server:
        backend = sys.argv[1] if len(sys.argv) > 1 else None
        result = run_dag(Path(folder) / "home", server, Path(folder) / "exports", backend)
        requests = {
            api: sum(1 for e in result.requests if e["api"] == api) for api in ("browsee", "openpanel")
        }
        summary = {
            "state": result.state,
            "max_running": result.max_running,
            "seconds": round(result.seconds, 1),
        }
        print(json.dumps({**summary, "requests": requests, **result.violations()}))
