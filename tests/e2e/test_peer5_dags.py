"""peer5_hourly run by real Airflow against the sandbox; files compared with sandbox.data.

Peer5 serves 1m data for the last 7 days only, and the Airflow subprocess reads the real
clock, so the runs use windows relative to now (the sandbox clock is not pinned here).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner
from analytics_export_sandbox.peer5 import peer5_csv, peer5_rows

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
BY_BROWSER_COUNTRY = ["browser.name", "country.code"]
PLAYBACK = ["sessions", "played", "rebuffered"]


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _recent_hour(hours_ago: int) -> dt.datetime:
    return dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - hours_ago * HOUR


def _folder(export_root: Path, interval_start: dt.datetime) -> Path:
    return export_root / "peer5" / interval_start.strftime("%Y-%m-%d") / interval_start.strftime("%H")


def _run(runner: AirflowRunner, logical_date: dt.datetime, conf: dict[str, str] | None = None) -> None:
    extra = ["--conf", json.dumps(conf)] if conf else []
    result = runner.cli("dags", "test", "peer5_hourly", logical_date.isoformat(), *extra, check=False)
    assert "state=success" in result.stdout + result.stderr, (result.stdout + result.stderr)[-4000:]


def _assert_files(sandbox: SandboxServer, folder: Path, start: dt.datetime, end: dt.datetime) -> None:
    traffic = peer5_rows(sandbox.config, _ms(start), _ms(end), "1m", ["http", "p2p"])
    # An aligned window and a csv destination: Peer5's CSV bytes, one header, every minute once.
    assert (folder / "traffic_1m.csv").read_text() == peer5_csv(traffic, ["timestamp", "http", "p2p"])
    minutes = [row["timestamp"] for row in traffic]
    assert minutes == list(range(_ms(start), _ms(end), 60_000))

    playback = [json.loads(line) for line in (folder / "playback_by_browser_country.jsonl").open()]
    expected = peer5_rows(sandbox.config, _ms(start), _ms(end), "5m", PLAYBACK, None, BY_BROWSER_COUNTRY)
    assert playback == expected  # jsonl: rows as Peer5 sent them
    keys = [(row["timestamp"], row["browser.name"], row["country.code"]) for row in playback]
    assert len(keys) == len(set(keys)) == (end - start) // dt.timedelta(minutes=5) * 4 * 5


def test_hourly_run_exports_its_hour(
    airflow_runner: AirflowRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    interval_start = _recent_hour(3)
    _run(airflow_runner, interval_start + HOUR)

    _assert_files(sandbox_reset, _folder(export_root, interval_start), interval_start, interval_start + HOUR)
    assert len([entry for entry in sandbox_reset.requests_log if entry["api"] == "peer5"]) == 2


def test_20_hour_window_at_1m_is_split_into_allowed_chunks(
    airflow_runner: AirflowRunner, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    end = _recent_hour(30)
    start = end - 20 * HOUR
    _run(airflow_runner, end + HOUR, {"start": start.isoformat(), "end": end.isoformat()})

    # A run given a window writes into a partition named after it, never over the run's own hour.
    reexport = export_root / "peer5" / "reexport" / f"{start.isoformat()}_{end.isoformat()}"
    _assert_files(sandbox_reset, reexport, start, end)
    assert not _folder(export_root, end).exists()
    peer5 = [entry for entry in sandbox_reset.requests_log if entry["api"] == "peer5"]
    # Both tasks: 1m and 5m allow at most 6 hours per query -> 6 + 6 + 6 + 2 hours each.
    assert len(peer5) == 8
    assert all(entry["status"] == 200 for entry in peer5)
