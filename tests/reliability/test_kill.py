"""A worker SIGKILLed midway never leaves a partial file at the destination; a re-run completes it.

The export runs in a subprocess (``export_worker``) against the sandbox with added
latency so it is surely midway (its temp object has data) when it is killed. Temp
objects ``.<name>.<hex>.partial`` may stay next to the destination after a hard kill
(no code runs on SIGKILL); the destination itself must hold the previous file or none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook
from analytics_export_sandbox import SandboxServer
from tests.reliability.conftest import UTC, day, leftover_partials, sandbox_env
from tests.reliability.export_worker import main as run_in_process

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = b"previous complete file\n"


def _worker(spec: dict[str, Any], url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.export_worker", json.dumps(spec)],
        cwd=REPO,
        env=sandbox_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(spec: dict[str, Any], url: str) -> dict[str, Any]:
    proc = _worker(spec, url)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])["result"]


def _kill_midway(spec: dict[str, Any], url: str, folder: Path, min_bytes: int, timeout: float = 60) -> None:
    """Start the export and SIGKILL it once its temp object holds at least ``min_bytes``."""
    proc = _worker(spec, url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            partials = leftover_partials(folder)
            if partials and partials[0].stat().st_size >= min_bytes:
                break
            assert proc.poll() is None, (
                f"export ended before it could be killed: {proc.stderr.read()[-3000:]}"
            )  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            raise AssertionError("the export never got midway")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _recent_day(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


def _browsee(destination: Path) -> dict[str, Any]:
    return {
        "operator": "browsee",
        "kwargs": {"destination": destination.as_uri(), "page_size": 10},
        "start": day("2024-04-14").isoformat(),
        "end": day("2024-04-15").isoformat(),
    }


def _peer5(destination: Path) -> dict[str, Any]:
    start = _recent_day(3)
    return {
        "operator": "peer5",
        "kwargs": {"destination": destination.as_uri(), "metrics": ["http", "p2p"], "interval": "1m"},
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=2)).isoformat(),
    }


KILLED_EXPORTS = {
    # (spec builder, file name, sandbox latency per request, bytes in the temp object before the kill,
    #  whether a previous file is at the destination)
    "browsee_rows-previous_file": (_browsee, "sessions.jsonl", {"browsee": 150}, 2_000, True),
    "peer5_csv_bytes-no_file": (_peer5, "traffic.csv", {"peer5": 400}, 2_000, False),
}


@pytest.mark.heavy
@pytest.mark.parametrize("name", list(KILLED_EXPORTS))
def test_kill_midway_keeps_previous_file_and_rerun_completes(
    name: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    build, filename, latency, min_bytes, previous = KILLED_EXPORTS[name]
    reference = tmp_path / "reference" / filename
    run_in_process(build(reference))

    destination = tmp_path / "exports" / filename
    destination.parent.mkdir()
    if previous:
        destination.write_bytes(PREVIOUS)
    clean_sandbox.config.update({"latency_ms": latency})
    _kill_midway(build(destination), clean_sandbox.url, destination.parent, min_bytes)

    if previous:
        assert destination.read_bytes() == PREVIOUS
    else:
        assert not destination.exists()
    left = leftover_partials(destination.parent)
    assert all(path.name.startswith(f".{filename}.") for path in left), left

    clean_sandbox.config.update({"latency_ms": dict.fromkeys(latency, 0)})
    result = run_in_process(build(destination))  # the task's retry
    assert destination.read_bytes() == reference.read_bytes()
    assert result["rows"] > 0


@pytest.mark.heavy
def test_kill_during_sealmetrics_download_keeps_previous_file(
    clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A large download (raw bytes straight into the temp object) killed midway, then fetched again."""
    clean_sandbox.config.update({"sealmetrics_row_padding": 1500, "sealmetrics_job_delay": 0.2})
    hook = SealmetricsHook()
    body = {
        "export_type": "microconversions",
        "format": "csv",
        "date_from": "2024-04-01",
        "date_to": "2024-04-05",
        "filters": {},
    }
    job_id = str(hook.create_export(body)["job_id"])
    job = hook.wait_for_export(job_id, poll_interval=0.1, timeout=30)
    destination = tmp_path / "exports" / "microconversions.csv"
    destination.parent.mkdir()
    destination.write_bytes(PREVIOUS)
    spec = {
        "operator": "sealmetrics_download",
        "kwargs": {"destination": destination.as_uri(), "job_id": job_id},
        "start": day("2024-04-01").isoformat(),
        "end": day("2024-04-06").isoformat(),
    }

    _kill_midway(spec, clean_sandbox.url, destination.parent, min_bytes=1_000_000)

    assert destination.read_bytes() == PREVIOUS
    result = run_in_process(spec)
    assert result["rows"] == job["actual_rows"] == 60_000
    assert destination.stat().st_size == result["bytes"] > 60_000 * 1500


@pytest.mark.heavy
def test_worker_killed_while_job_runs_reconnects_and_downloads(
    clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The job id kept in the task state store lets the retry reconnect instead of creating a second
    job; the retry must then download the file (not just wait for the job)."""
    # The kill follows the job id's write within ~0.1 s (0.5 s under load): a 2-s job is still
    # running then, and the retry waits out only what is left of it.
    clean_sandbox.config.update({"sealmetrics_job_delay": 2.0})
    destination = tmp_path / "exports" / "microconversions.csv"
    state = tmp_path / "task_state.json"
    spec = {
        "operator": "sealmetrics",
        "kwargs": {
            "destination": destination.as_uri(),
            "export_type": "microconversions",
            "deferrable": False,
            "poll_interval": 0.3,
        },
        "start": day("2024-04-14").isoformat(),
        "end": day("2024-04-15").isoformat(),
        "state": str(state),
    }
    proc = _worker(spec, clean_sandbox.url)
    deadline = time.monotonic() + 60
    while not (state.exists() and state.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert "sealmetrics_job_id" in json.loads(state.read_text())
    assert not destination.exists()

    result = run_in_process(spec)  # the task's retry, same state store

    creates = [
        e for e in clean_sandbox.requests_log if e["method"] == "POST" and e["path"] == "/api/v1/exports"
    ]
    assert len(creates) == 1, "the retry created a second job instead of reconnecting"
    assert result is not None, "the retry reconnected but returned no result (nothing downloaded)"
    assert destination.exists()
    assert result["rows"] == 12_000


def _s3_client() -> Any:
    import boto3

    extra = json.loads(os.environ["AIRFLOW_CONN_AWS_MOTO"])["extra"]
    return boto3.client(
        "s3",
        endpoint_url=extra["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.mark.heavy
def test_kill_midway_on_object_storage_keeps_previous_object(
    clean_sandbox: SandboxServer, s3_destination: str, tmp_path: Path
) -> None:
    """S3 has no rename: the temp object is copied over the destination only after the last page.

    Midway is judged from the sandbox's request log (the temp object is invisible on S3 until
    the writer closes it).
    """
    s3 = _s3_client()
    key = f"reliability/{uuid.uuid4().hex}/sessions.jsonl"
    s3.put_object(Bucket="exports", Key=key, Body=PREVIOUS)
    reference = tmp_path / "reference.jsonl"
    run_in_process(_browsee(reference))
    spec = _browsee(tmp_path / "unused.jsonl")
    spec["kwargs"].update(destination=f"s3://exports/{key}", destination_conn_id=s3_destination)
    clean_sandbox.reset()
    clean_sandbox.config.update({"latency_ms": {"browsee": 150}})

    proc = _worker(spec, clean_sandbox.url)
    deadline = time.monotonic() + 60
    while len(clean_sandbox.requests_log) < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, "export ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)

    assert s3.get_object(Bucket="exports", Key=key)["Body"].read() == PREVIOUS
    folder = key.rsplit("/", 1)[0]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="exports", Prefix=folder).get("Contents", [])]
    assert keys == [key], f"objects next to the destination after the kill: {keys}"

    clean_sandbox.config.update({"latency_ms": {"browsee": 0}})
    run_in_process(spec)
    assert s3.get_object(Bucket="exports", Key=key)["Body"].read() == reference.read_bytes()
