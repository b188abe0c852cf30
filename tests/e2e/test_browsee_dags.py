"""browsee_sessions_daily run by real Airflow against the sandbox; every file compared row by row."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq

from airflow_provider_analytics_export.hooks.browsee import BROWSEE_SESSIONS, ID_FIELD
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.browsee import browsee_sessions
from tests.typed import csv_rows, parquet_rows

UTC = dt.timezone.utc
CSV_FIELDS = ["userId", "timestamp", "duration", "activeTime", "pageCount", "country", "device"]


def day_sessions(sandbox: SandboxServer, day: dt.date, fields: list[str] | None = None) -> list[dict]:
    """The day's sessions as the sandbox sends them (what jsonl keeps)."""
    start = int(dt.datetime.combine(day, dt.time(), UTC).timestamp())
    return list(browsee_sessions(sandbox.config, start, start + 86_400, fields=fields))


def read_files(folder: Path) -> dict[str, list[dict]]:
    with (folder / "engagement.csv").open(newline="") as handle:
        engagement = list(csv.DictReader(handle))
    return {
        "jsonl": [json.loads(line) for line in (folder / "sessions.jsonl").read_text().splitlines()],
        "parquet": pq.read_table(folder / "sessions.parquet").to_pylist(),
        "csv": engagement,
    }


def assert_day_exported(sandbox: SandboxServer, export_root: Path, day: dt.date) -> dict[str, list[dict]]:
    files = read_files(export_root / "browsee" / day.isoformat())
    want = day_sessions(sandbox, day)
    assert len(want) == 480
    assert files["jsonl"] == want
    assert files["parquet"] == parquet_rows(want, BROWSEE_SESSIONS)
    csv_schema = BROWSEE_SESSIONS.select(CSV_FIELDS, keep=[ID_FIELD])
    assert files["csv"] == csv_rows(day_sessions(sandbox, day, CSV_FIELDS), csv_schema)
    return files


def test_consecutive_daily_runs_export_each_day_once(airflow_run, sandbox_reset, export_root):
    # A run at 2024-04-16 covers the last complete interval, [2024-04-15, 2024-04-16).
    airflow_run("browsee_sessions_daily", "2024-04-16")
    airflow_run("browsee_sessions_daily", "2024-04-17")
    first = assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 15))
    second = assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 16))
    ids = [row["sessionId"] for row in first["jsonl"] + second["jsonl"]]
    assert len(ids) == len(set(ids)) == 960
    calls = sorted(
        (e for e in sandbox_reset.requests_log if e["api"] == "browsee"), key=lambda e: e["started"]
    )
    assert not any(entry["overlap"] for entry in calls)
    assert all(a["ended"] <= b["started"] for a, b in zip(calls, calls[1:], strict=False))


def test_faults_on_a_fixed_share_of_requests_give_the_same_files(airflow_run, sandbox_reset, export_root):
    kinds = ["500", "502", "503", "429", "drop", "truncate"]
    sandbox_reset.config.update({"faults": {"rate": 0.25, "seed": 5, "kinds": kinds}})
    airflow_run("browsee_sessions_daily", "2024-04-19")
    assert_day_exported(sandbox_reset, export_root, dt.date(2024, 4, 18))
    faults = [entry["fault"] for entry in sandbox_reset.requests_log if entry["fault"]]
    assert len(faults) >= 3
    assert not list((export_root / "browsee" / "2024-04-18").glob(".*partial"))
