"""Sealmetrics: a 500 MB download two ways, and 500 export triggers polling in one event loop.

- ``plain_requests``: ``requests.get(stream=True)`` + ``iter_content`` into a local file: the floor.
- ``operator``: ``SealmetricsDownloadExportOperator`` (host/scheme checks, token masking, CSV
  record count cross-checked with ``actual_rows``, atomic writer, progress lines).
- ``triggers``: N ``SealmetricsExportTrigger`` run concurrently with asyncio until every job
  completed; memory growth (also per trigger), CPU seconds of the process and how many
  aiohttp sessions the triggers opened.

Each case runs in a fresh Python process (its peak RSS, VmHWM, and CPU time are its own); the
sandbox runs in another process. Run: ``python -m benchmarks.bench_sealmetrics [--mb 500]
[--only triggers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_baselines import _rss_mb, configure_sandbox, peak_rss_mb, sandbox_env, sandbox_process

DAY = "2025-01-10"
ROW_PADDING = 1000  # bytes of padding per row, so 500 MB needs ~480k rows
TRIGGERS = 500


# -- cases (inside the child process) ------------------------------------------------------------
def download_plain(url: str, job: dict[str, Any], out: Path) -> int:
    import requests

    with requests.get(job["download_url"], stream=True, timeout=60) as response:
        response.raise_for_status()
        with out.open("wb") as handle:
            for chunk in response.iter_content(1024 * 1024):
                handle.write(chunk)
    return out.stat().st_size


def download_operator(url: str, job: dict[str, Any], out: Path) -> int:
    from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsDownloadExportOperator

    operator = SealmetricsDownloadExportOperator(task_id="d", job_id=job["job_id"], destination=out.as_uri())
    return int(operator.execute({})["bytes"])


def count_sessions() -> list[int]:
    """Count every aiohttp session opened from now on in this process (the list's one item)."""
    import aiohttp

    opened = [0]
    original = aiohttp.ClientSession.__init__

    def counting(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        opened[0] += 1
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = counting  # type: ignore[method-assign]
    return opened


def run_triggers(url: str, job_ids: list[str]) -> int:
    import asyncio

    from airflow_provider_analytics_export.triggers.sealmetrics import SealmetricsExportTrigger

    async def first(trigger: SealmetricsExportTrigger) -> str:
        async for event in trigger.run():
            return str(event.payload["status"])
        return "none"

    async def main() -> list[str]:
        return await asyncio.gather(*(first(SealmetricsExportTrigger(j, poll_interval=1.0)) for j in job_ids))

    statuses = asyncio.run(main())
    return sum(status == "completed" for status in statuses)


def child(case: str, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    import airflow_provider_analytics_export.operators.sealmetrics  # noqa: F401 - import is not the work
    import airflow_provider_analytics_export.triggers.sealmetrics  # noqa: F401

    sessions = count_sessions()
    baseline = _rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if case == "triggers":
            amount = run_triggers(url, payload["job_ids"])
        else:
            export = download_plain if case == "plain_requests" else download_operator
            amount = export(url, payload["job"], Path(tmp) / "export.csv")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = peak_rss_mb()
    result = {"case": case, "seconds": round(wall, 2), "cpu_s": round(cpu, 2)}
    result.update({"peak_rss_mb": round(peak, 1), "rss_growth_mb": round(peak - baseline, 1)})
    if case == "triggers":
        count = len(payload["job_ids"])
        result.update({"triggers": count, "completed": amount, "sessions_opened": sessions[0]})
        result["rss_kb_per_trigger"] = round((peak - baseline) * 1024 / count, 1)
    else:
        result.update({"bytes": amount, "mb_per_s": round(amount / 1e6 / wall, 1)})
    return result


# -- orchestration (parent process) --------------------------------------------------------------
def _spawn(case: str, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, **sandbox_env(url)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_sealmetrics", "--child", case, "--url", url],
        input=json.dumps(payload),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _hook(url: str) -> Any:
    os.environ.update(sandbox_env(url))
    from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook

    return SealmetricsHook()


def _completed_job(hook: Any, body: dict[str, Any]) -> dict[str, Any]:
    job = hook.create_export(body)
    while job["status"] != "completed":
        time.sleep(0.5)
        job = hook.get_export(job["job_id"])
    return dict(job)


def bench_download(mb: int = 500) -> dict[str, Any]:
    """Peak RSS and MB/s of an ``mb`` MB download: plain requests vs the operator, same job."""
    with sandbox_process() as url:
        rows = mb * 1_000_000 // (ROW_PADDING + 40)
        configure_sandbox(
            url,
            sealmetrics_job_delay=0.0,
            sealmetrics_row_padding=ROW_PADDING,
            sealmetrics_rows_per_day={"pages": rows},
        )
        from airflow_provider_analytics_export.hooks.sealmetrics import export_body

        job = _completed_job(_hook(url), export_body("pages", DAY, DAY))
        return {case: _spawn(case, url, {"job": job}) for case in ("plain_requests", "operator")}


def bench_triggers(count: int = TRIGGERS, job_seconds: float = 60.0) -> dict[str, Any]:
    """Memory and CPU of ``count`` triggers polling the sandbox concurrently in one asyncio loop."""
    with sandbox_process() as url:
        # The loop's cost is measured, not the plan's per-minute limit (500 triggers poll far above it).
        configure_sandbox(
            url,
            sealmetrics_job_delay=job_seconds,
            sealmetrics_max_concurrent=count + 1,
            sealmetrics_rate_limit=None,
        )
        from airflow_provider_analytics_export.hooks.sealmetrics import export_body

        hook = _hook(url)
        body = export_body("microconversions", DAY, DAY)
        job_ids = [hook.create_export(body)["job_id"] for _ in range(count)]
        return _spawn("triggers", url, {"job_ids": job_ids})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--triggers", type=int, default=TRIGGERS)
    parser.add_argument("--only", choices=("download", "triggers"), help="run one measurement")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, json.loads(sys.stdin.read()))))
        return
    if args.only != "triggers":
        print(json.dumps({"download": bench_download(args.mb)}, indent=2))
    if args.only != "download":
        print(json.dumps({"triggers": bench_triggers(args.triggers)}, indent=2))


if __name__ == "__main__":
    main()
