"""Every export gives the same file with 10 % injected faults as without any.

The sandbox injects 500/502/503, 429 with Retry-After, dropped connections, bodies cut
short, responses slower than the read timeout and, for Sealmetrics, failed jobs and cut
downloads, from a fixed seed. The transport retries; a Sealmetrics job that fails is
a task failure that Airflow's own retry repeats (modelled here by executing again).
Each failed attempt must leave the destination absent; the final file must equal the
fault-free one byte for byte (jsonl/csv) or row for row (parquet).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_analytics_export.exceptions import SealmetricsExportFailedError
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.config import FAULT_KINDS
from analytics_export_sandbox.server import FaultInjector
from tests.reliability.conftest import UTC, day, read_rows, run_context

FAULT_RATE = 0.10
#: A seed per export, chosen so each one meets several kinds early in its request sequence
#: (the injector replays a seed exactly; the same seed everywhere would repeat one pattern).
SEEDS = {
    "browsee_sessions": 5,
    "openpanel_events": 37,
    "openpanel_charts": 12,
    "braze_sessions": 26,
    "peer5": 17,
    "sealmetrics_export": 26,
    "sealmetrics_download": 8,
}
READ_TIMEOUT = 1.0
SLOW_SECONDS = 1.6
JOB_FAULT_SEED = 1
#: Task-level attempts for a Sealmetrics job that the sandbox failed on purpose (Airflow retries).
TASK_ATTEMPTS = 4
#: Kinds hit per export, filled as the tests run; checked last (see test_every_kind_was_injected).
KINDS_HIT: dict[str, Counter[str]] = {}


def _recent_day(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


Export = Callable[[str, str], list[tuple[Any, dict[str, Any]]]]
"""(conn_id, destination folder) -> [(operator, context)] executed in order into that folder."""


def browsee(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    op = BrowseeSessionsExportOperator(
        task_id="browsee",
        destination=f"{folder}/sessions.parquet",
        browsee_conn_id=conn_id,
        page_size=20,
    )
    return [(op, run_context(day("2024-04-14"), day("2024-04-15")))]


def openpanel_events(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    op = OpenPanelEventsExportOperator(
        task_id="openpanel_events",
        destination=f"{folder}/events.jsonl",
        openpanel_conn_id=conn_id,
        page_size=100,
        max_concurrency=4,
        includes=["profile", "meta"],
    )
    return [(op, run_context(day("2024-04-14"), day("2024-04-16")))]


def openpanel_charts(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    """One request per chart, so several weekly charts give the faults something to hit."""
    runs = []
    for week in range(12):
        start = day("2024-01-01") + dt.timedelta(weeks=week)
        op = OpenPanelChartsExportOperator(
            task_id=f"openpanel_chart_{week}",
            destination=f"{folder}/chart_{week}.csv",
            openpanel_conn_id=conn_id,
            events=[{"name": "screen_view"}, {"name": "purchase", "segment": "user"}],
            breakdowns=[{"name": "country"}],
            interval="day",
            previous=True,
        )
        runs.append((op, run_context(start, start + dt.timedelta(weeks=1))))
    return runs


def braze(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    op = BrazeSessionsExportOperator(
        task_id="braze", destination=f"{folder}/sessions.csv", braze_conn_id=conn_id, unit="hour"
    )
    return [(op, run_context(day("2024-01-01"), day("2024-01-01") + dt.timedelta(hours=4000)))]


def peer5(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    start = _recent_day(6)
    window = run_context(start, start + dt.timedelta(days=4))
    csv_op = Peer5ExportOperator(
        task_id="peer5_csv",
        destination=f"{folder}/traffic_1m.csv",
        peer5_conn_id=conn_id,
        metrics=["http", "p2p"],
        interval="1m",
    )
    jsonl_op = Peer5ExportOperator(
        task_id="peer5_jsonl",
        destination=f"{folder}/by_browser.jsonl",
        peer5_conn_id=conn_id,
        metrics=["played", "sessions"],
        interval="5m",
        dimensions=["browser.name"],
    )
    return [(csv_op, window), (jsonl_op, window)]


def sealmetrics(conn_id: str, folder: str) -> list[tuple[Any, dict[str, Any]]]:
    """Streamed (small) and background-job (large) exports through the one-task operator."""
    runs = []
    for export_type, days in (("sources", 3), ("pages", 2), ("microconversions", 1), ("pages", 5)):
        op = SealmetricsExportOperator(
            task_id=f"sealmetrics_{export_type}_{days}",
            export_type=export_type,
            destination=f"{folder}/{export_type}_{days}.csv",
            sealmetrics_conn_id=conn_id,
            deferrable=False,
            poll_interval=0.2,
            timeout=120,
            cap_wait_seconds=60,
        )
        runs.append((op, run_context(day("2024-04-10"), day("2024-04-10") + dt.timedelta(days=days))))
    return runs


class _CreatedJobs:
    """Creates (fault-free) the jobs the download operator then fetches under faults."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def create(self, conn_id: str, sandbox: SandboxServer) -> None:
        rate = sandbox.config.faults.rate
        sandbox.config.faults.rate = 0.0
        hook = SealmetricsHook(conn_id)
        self.ids = []
        for export_type, first, last in (
            ("microconversions", "2024-04-10", "2024-04-11"),
            ("landing_pages", "2024-04-10", "2024-04-16"),
        ):
            body = {
                "export_type": export_type,
                "format": "csv",
                "date_from": first,
                "date_to": last,
                "filters": {},
            }
            self.ids.append(str(hook.create_export(body)["job_id"]))
        for job_id in self.ids:
            hook.wait_for_export(job_id, poll_interval=0.1, timeout=30)
        sandbox.config.faults.rate = rate


def sealmetrics_download(conn_id: str, folder: str, job_ids: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    return [
        (
            SealmetricsDownloadExportOperator(
                task_id=f"download_{number}",
                job_id=job_id,
                destination=f"{folder}/download_{number}.csv",
                sealmetrics_conn_id=conn_id,
            ),
            run_context(day("2024-04-10"), day("2024-04-11")),
        )
        for number, job_id in enumerate(job_ids)
    ]


EXPORTS: dict[str, tuple[str, Export]] = {
    "browsee_sessions": ("browsee", browsee),
    "openpanel_events": ("openpanel", openpanel_events),
    "openpanel_charts": ("openpanel", openpanel_charts),
    "braze_sessions": ("braze", braze),
    "peer5": ("peer5", peer5),
    "sealmetrics_export": ("sealmetrics", sealmetrics),
}


def _execute(op: Any, context: dict[str, Any], retry_failed_jobs: bool) -> dict[str, Any]:
    destination = Path(op.destination.removeprefix("file://"))
    for attempt in range(1, TASK_ATTEMPTS + 1):
        try:
            return op.execute(context)
        except SealmetricsExportFailedError:
            # A failed job is a failed task; the destination must not have been touched.
            assert not destination.exists(), f"{destination} written by a failed attempt"
            if not retry_failed_jobs or attempt == TASK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _run_all(runs: list[tuple[Any, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {op.task_id: _execute(op, ctx, retry_failed_jobs=True) for op, ctx in runs}


def _files(folder: Path) -> dict[str, Any]:
    """File name -> bytes, or rows for parquet; temp objects must not remain."""
    assert not list(folder.glob(".*")), f"temp objects left: {list(folder.glob('.*'))}"
    return {
        path.name: read_rows(path) if path.suffix == ".parquet" else path.read_bytes()
        for path in sorted(folder.iterdir())
    }


def _faulty(sandbox: SandboxServer, seed: int, rate: float = FAULT_RATE, kinds: Any = FAULT_KINDS) -> None:
    sandbox.reset()
    sandbox.config.update(
        {
            "faults": {
                "rate": rate,
                "seed": seed,
                "kinds": list(kinds),
                "slow_seconds": SLOW_SECONDS,
            },
            "sealmetrics_job_delay": 0.3,
        }
    )


def _clean(sandbox: SandboxServer) -> None:
    sandbox.reset()
    sandbox.config.update({"faults": {"rate": 0.0}, "sealmetrics_job_delay": 0.3})


def _record(name: str, sandbox: SandboxServer) -> Counter[str]:
    hit = Counter(kind for kind in sandbox.faults.history if kind)
    KINDS_HIT[name] = hit
    print(f"faults injected into {name}: {dict(hit)}")
    return hit


def _conn(api_conn: Callable[..., str], api: str, sandbox: SandboxServer) -> str:
    return api_conn(api, sandbox.url, timeout=READ_TIMEOUT, max_attempts=12)


@pytest.mark.heavy
@pytest.mark.parametrize("name", list(EXPORTS))
def test_same_file_with_and_without_faults(
    name: str, clean_sandbox: SandboxServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    api, export = EXPORTS[name]
    conn_id = _conn(api_conn, api, clean_sandbox)

    _clean(clean_sandbox)
    expected_results = _run_all(export(conn_id, (tmp_path / "clean").as_uri()))
    expected = _files(tmp_path / "clean")

    _faulty(clean_sandbox, SEEDS[name])
    results = _run_all(export(conn_id, (tmp_path / "faulty").as_uri()))
    hit = _record(name, clean_sandbox)

    assert _files(tmp_path / "faulty") == expected
    assert [r["rows"] for r in results.values()] == [r["rows"] for r in expected_results.values()]
    assert all(r["rows"] > 0 for r in results.values())
    assert sum(hit.values()) >= 2, f"too few faults injected to mean anything: {hit}"


def test_sealmetrics_download_same_file_with_and_without_faults(
    clean_sandbox: SandboxServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = _conn(api_conn, "sealmetrics", clean_sandbox)
    jobs = _CreatedJobs()
    _clean(clean_sandbox)
    jobs.create(conn_id, clean_sandbox)
    _run_all(sealmetrics_download(conn_id, (tmp_path / "clean").as_uri(), jobs.ids))
    expected = _files(tmp_path / "clean")

    _faulty(clean_sandbox, SEEDS["sealmetrics_download"])
    jobs.create(conn_id, clean_sandbox)
    _run_all(sealmetrics_download(conn_id, (tmp_path / "faulty").as_uri(), jobs.ids) * 3)
    _record("sealmetrics_download", clean_sandbox)

    assert _files(tmp_path / "faulty") == expected


def test_sealmetrics_failed_jobs_and_cut_downloads(
    clean_sandbox: SandboxServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    """Half of the jobs fail midway and half of the downloads/streams are cut: same files in the end.

    Only the two Sealmetrics-specific kinds are on, so every other request goes through.
    """
    conn_id = _conn(api_conn, "sealmetrics", clean_sandbox)
    _clean(clean_sandbox)
    _run_all(sealmetrics(conn_id, (tmp_path / "clean").as_uri()))
    expected = _files(tmp_path / "clean")

    _faulty(clean_sandbox, seed=JOB_FAULT_SEED, rate=0.5, kinds=["job_fail", "download_cut"])
    _run_all(sealmetrics(conn_id, (tmp_path / "faulty").as_uri()))
    hit = _record("sealmetrics_job_faults", clean_sandbox)

    assert _files(tmp_path / "faulty") == expected
    assert hit["job_fail"] >= 1 and hit["download_cut"] >= 1, hit


def test_every_kind_was_injected() -> None:
    """Across the exports above, every fault kind fired at least once (the seed is fixed)."""
    if len(KINDS_HIT) < len(EXPORTS) + 2:
        pytest.skip("needs the whole module (run with the fault tests above)")
    fired = set().union(*KINDS_HIT.values())
    print("fault kinds hit per export:", json.dumps({name: dict(hit) for name, hit in KINDS_HIT.items()}))
    assert set(FaultInjector.GENERIC) <= fired
    assert {"job_fail", "download_cut"} <= fired
