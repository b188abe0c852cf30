"""Every example DAG file parses in real Airflow: ``airflow dags list-import-errors`` reports nothing."""

from __future__ import annotations

import json
from pathlib import Path

from analytics_export_sandbox.airflow_runner import AirflowRunner

from .conftest import EXAMPLE_DAGS, RecordingRunner


def _json_rows(stdout: str) -> list[dict[str, str]]:
    """The JSON table the CLI printed after any log lines ("No data found" when empty)."""
    tables = [line for line in stdout.splitlines() if line.startswith("[{") or line.strip() == "[]"]
    return json.loads(tables[-1]) if tables else []


def _import_errors(runner: AirflowRunner) -> list[dict[str, str]]:
    """Parse the DAGs folder into the database, then list the files that failed (exit 1 if any)."""
    runner.cli("dags", "reserialize")
    result = runner.cli("dags", "list-import-errors", "--output", "json", check=False)
    errors = _json_rows(result.stdout)
    assert result.returncode == (1 if errors else 0), result.stdout + result.stderr
    return errors


def test_example_dags_have_no_import_errors(airflow_runner: AirflowRunner) -> None:
    assert _import_errors(airflow_runner) == []
    listed = airflow_runner.cli("dags", "list", "--output", "json", "--columns", "dag_id,fileloc").stdout
    files = {Path(dag["fileloc"]).name for dag in _json_rows(listed)}
    assert files == {path.name for path in EXAMPLE_DAGS.glob("*.py")}


def test_an_import_error_is_reported(tmp_path: Path) -> None:
    """The check above is not vacuous: a DAG file that fails to parse is listed."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "bad_schedule.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG('bad_schedule', schedule='every day'):\n    pass\n"
    )
    runner = RecordingRunner(
        tmp_path / "home", dags, sandbox_url="http://127.0.0.1:9", export_root=tmp_path.as_uri()
    )
    runner.migrate()
    [error] = _import_errors(runner)
    assert error["filepath"] == "bad_schedule.py"
    assert "every day" in error["error"] or "Timetable" in error["error"]


def test_make_demo_shows_progress_and_keeps_the_logs(tmp_path: Path, capsys) -> None:
    """``make demo`` says what it does as it goes and leaves the task logs where it says (issue 21)."""
    from analytics_export_sandbox import demo

    home = tmp_path / "airflow-home"
    (home / "stale").mkdir(parents=True)  # a previous demo's home is emptied, not reused
    code = demo.main(
        ["--dags-folder", str(EXAMPLE_DAGS), "--dag", "peer5_hourly", "--output", str(tmp_path / "out")]
        + ["--airflow-home", str(home)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    steps = ["Creating Airflow's metadata database", "Parsing the example DAGs", "[1/1] airflow dags test"]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    assert f"Task logs (each DAG run's output, as `airflow dags test` prints them): {home / 'runs'}" in out
    assert not (home / "stale").exists()
    run_log = (home / "runs" / "peer5_hourly.log").read_text()
    assert "Export written:" in run_log and "state=success" in run_log  # the task logs themselves
