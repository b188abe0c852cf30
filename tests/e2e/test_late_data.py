"""Late data with real Airflow: consecutive daily runs, each at its window's end + settle, while the
sandbox's past keeps changing; with revisit every settled partition ends equal to the final data.

Every API (jsonl and parquet; Sealmetrics csv and json) in one DAG (tests/e2e/late_data_dags).
Windows are recent days (Peer5 serves 1h data for a limited past, checked on the real clock); the
sandbox clock is pinned 5 minutes (the DAG's settle) after each window's end for its run. The
reference for "final" is the same operator exporting the window with the clock unpinned (every late
item has arrived by then: the horizon is 6 hours, the days are older). The same schedule without
revisit is run too (its tasks in this process, the clock pinned as for the DAG's runs): that it lost
rows of every API is asserted, and what it lost is printed (evidence for the README).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner
from tests.e2e.conftest import RecordingRunner, migrated_runner, scanned

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
DAGS = Path(__file__).resolve().parent / "late_data_dags"
LATE = {
    "late_share": dict.fromkeys(("browsee", "braze", "openpanel", "peer5", "sealmetrics"), 0.3),
    "late_horizon": dict.fromkeys(("browsee", "braze", "openpanel", "peer5", "sealmetrics"), 6 * 3600.0),
    "openpanel_flush_lag": 10.0,
    "browsee_running": "growing",
}


def _dag_module() -> Any:
    spec = importlib.util.spec_from_file_location("late_data_dags_module", DAGS / "late_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def _late_home(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, export_root: Path
) -> RecordingRunner:
    return migrated_runner(tmp_path_factory.mktemp("airflow-home-late"), DAGS, sandbox, export_root)


@pytest.fixture
def late_runner(_late_home: RecordingRunner, sandbox_reset: SandboxServer) -> Iterator[RecordingRunner]:
    """The module's Airflow home; after each test its runs are searched for secrets, as every e2e's are."""
    with scanned(_late_home, sandbox_reset) as runner:
        yield runner


@pytest.fixture
def late_sandbox(sandbox_reset: SandboxServer) -> Iterator[SandboxServer]:
    if "late_share" not in sandbox_reset.config.to_dict():
        pytest.skip("this sandbox has no late-data switches yet")
    sandbox_reset.config.update(LATE)
    yield sandbox_reset


def _run(runner: AirflowRunner, sandbox: SandboxServer, dag_id: str, day: dt.date) -> str:
    """One scheduled run of ``day``, the sandbox clock at the day's end + the DAG's settle."""
    end = dt.datetime.combine(day + DAY, dt.time(), UTC)
    sandbox.config.update({"now": (end + dt.timedelta(minutes=5)).timestamp()})
    result = runner.dags_test(dag_id, end.isoformat(), check=False)
    output = result.stdout + result.stderr
    assert "state=success" in output and "new_state=failed" not in output, output[-6000:]
    return output


def _records(path: Path) -> list[Any]:
    """The partition's records, row by row (parquet read back; other formats as lines of bytes)."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    data = path.read_bytes()
    if path.suffix == ".json":
        return json.loads(data)
    return data.splitlines()


def _plain(sandbox: SandboxServer, tmp_path: Path, day: dt.date) -> None:
    """``late_data_plain``'s run of ``day`` (no revisit), in this process: each task exports its
    window once, the clock at the window's end + the settle, as the scheduled run would. What that
    schedule loses is up to the sandbox's clock, not Airflow: three ``dags test`` start-ups saved."""
    end = dt.datetime.combine(day + DAY, dt.time(), UTC)
    sandbox.config.update({"now": (end + dt.timedelta(minutes=5)).timestamp()})
    for task in _dag_module().BY_ID["late_data_plain"].tasks:
        name = Path(task.destination_template).name
        path = tmp_path / "plain" / task.task_id.rsplit("_", 1)[0] / day.isoformat() / name
        task.for_window((end - DAY, end), path.as_uri()).execute({})


def _final(sandbox: SandboxServer, tmp_path: Path, task: Any, day: dt.date) -> Path:
    """The window exported by the same task with the clock unpinned: the service's final data."""
    sandbox.config.update({"now": None})
    start = dt.datetime.combine(day, dt.time(), UTC)
    path = tmp_path / "final" / task.task_id / day.isoformat() / Path(task.destination_template).name
    task.for_window((start, start + DAY), path.as_uri()).execute({})
    return path


def test_revisits_make_every_settled_partition_equal_the_final_data(
    late_runner: AirflowRunner, late_sandbox: SandboxServer, export_root: Path, tmp_path: Path
) -> None:
    today = dt.datetime.now(UTC).date()
    days = [today - dt.timedelta(days=k) for k in (5, 4, 3)]
    outputs = [_run(late_runner, late_sandbox, "late_data_revisit", day) for day in days]
    for day in days:
        _plain(late_sandbox, tmp_path, day)
    assert "revisited=1 replaced=1" in outputs[1]  # the closing line names what the revisit corrected

    tasks = _dag_module().BY_ID["late_data_revisit"].tasks
    lost: dict[str, int] = {}
    for task in tasks:
        for day in days[:-1]:  # the last day is revisited by the next run
            name = Path(task.destination_template).name
            got = (
                export_root
                / "late"
                / "late_data_revisit"
                / task.task_id.rsplit("_", 1)[0]
                / day.isoformat()
                / name
            )
            final = _final(late_sandbox, tmp_path, task, day)
            assert _records(got) == _records(final), (task.task_id, day)
            plain = tmp_path / "plain" / got.relative_to(export_root / "late" / "late_data_revisit")
            before, after = _records(plain), _records(final)
            lost[f"{task.task_id} {day}"] = sum(1 for r in after if r not in before)
    # Late data really was late for every API: the schedule without revisit kept short partitions.
    for api in ("browsee", "braze", "openpanel", "peer5", "sealmetrics"):
        assert any(count for key, count in lost.items() if key.startswith(api)), api
    print("Rows the schedule without revisit lost (missing or with unsettled values):")
    print(json.dumps(lost, indent=1))

    # A run that finds nothing new rewrites nothing: the same run again, same clock.
    root = export_root / "late" / "late_data_revisit"
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("part.*")}
    again = _run(late_runner, late_sandbox, "late_data_revisit", days[-1])
    assert {p: p.stat().st_mtime_ns for p in root.rglob("part.*")} == stamps
    assert "revisited=1 replaced=0" in again


def test_settle_defers_on_the_triggerer_and_resumes_into_the_export(
    late_runner: AirflowRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    # Far enough ahead that `airflow dags test` (tens of seconds to start on a loaded machine) is
    # still before it when the task starts.
    end = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=40)
    # The sandbox runs in this process: its request log's monotonic times compare with ours.
    ready = time.monotonic() + (end + dt.timedelta(seconds=3) - dt.datetime.now(UTC)).total_seconds()
    conf = {"start": (end - dt.timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    result = late_runner.cli("dags", "test", "late_data_settle", "--conf", json.dumps(conf), check=False)
    output = result.stdout + result.stderr
    assert "state=success" in output and "new_state=failed" not in output, output[-6000:]
    assert "so the export starts at" in output and "on the triggerer (deferred)" in output
    assert "Pausing task as DEFERRED" in output and "running trigger in line" in output
    [partition] = (export_root / "late" / "late_data_settle" / "browsee").rglob("part.jsonl")
    assert partition.stat().st_size > 0
    first = min(entry["started"] for entry in sandbox_reset.requests_log if entry["api"] == "browsee")
    assert first >= ready - 0.05  # no request before end + settle
