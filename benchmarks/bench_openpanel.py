"""Throughput, peak memory and rate-limit pacing of the paginated exports (issue 3).

- :func:`bench_events`: OpenPanel events (10k / 100k / 1M) to jsonl and parquet: rows/s, peak RSS.
- :func:`bench_browsee`: Browsee sessions (100k) to jsonl and parquet: rows/s, peak RSS.
- :func:`bench_paced_pages`: wall time of 1,000 OpenPanel pages at 300 ms latency under the
  documented 100 requests / 10 s (the target: close to the 100 s rate bound, not 300 s).

Each export runs ``OpenPanelEventsExportOperator`` / ``BrowseeSessionsExportOperator`` in a
fresh Python process, so its VmHWM is that export's own peak; the sandbox runs in another
process. Throughput runs lift the OpenPanel rate limit on both sides (the real API caps an
export at 100 pages / 10 s = 10,000 rows/s); the paced run keeps it. Run alone:
``python -m benchmarks.bench_openpanel [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_baselines import configure_sandbox, peak_rss_mb, sandbox_env, sandbox_process

DAY = "2024-04-15"
FORMATS = ("jsonl", "parquet")
MAX_RSS_GROWTH_MB = 30.0


# -- inside the child process ---------------------------------------------------------------------
def export_here(api: str, fmt: str, out_dir: Path, paced: bool, page_size: int) -> dict[str, Any]:
    """Run one export operator for DAY in this process; wall time and peak RSS of this process."""
    import datetime as dt

    from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook
    from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
    from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

    if not paced:
        OpenPanelHook.request_limit = None
    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc)
    window = {
        "start": start,
        "end": start + dt.timedelta(days=1),
        "destination": (out_dir / f"{api}.{fmt}").as_uri(),
    }
    operator: Any = (
        OpenPanelEventsExportOperator(task_id="bench", page_size=page_size, **window)
        if api == "openpanel"
        else BrowseeSessionsExportOperator(task_id="bench", page_size=page_size, **window)
    )
    started = time.perf_counter()
    result = operator.execute({})
    seconds = time.perf_counter() - started
    return {
        "rows": result["rows"],
        "pages": result["pages"],
        "seconds": round(seconds, 2),
        "rows_per_s": round(result["rows"] / seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "bytes": result["bytes"],
    }


# -- the parent --------------------------------------------------------------------------------------
def _child(url: str, api: str, fmt: str, out_dir: Path, paced: bool = False, page_size: int = 1000) -> dict:
    env = {**os.environ, **sandbox_env(url), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "benchmarks.bench_openpanel", "--child", api, "--fmt", fmt]
    cmd += ["--out", str(out_dir), "--page-size", str(page_size)] + (["--paced"] if paced else [])
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{api} {fmt} export failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_events(url: str, out_dir: Path, sizes: Sequence[int] = (10_000, 100_000, 1_000_000)) -> dict:
    """OpenPanel events per size and format: rows/s and peak RSS (rate limit lifted)."""
    results: dict[str, Any] = {}
    for events in sizes:
        configure_sandbox(url, openpanel_events_per_day=events, openpanel_rate_limit=None)
        for fmt in FORMATS:
            results[f"{events}/{fmt}"] = _child(url, "openpanel", fmt, out_dir)
    # The target compares the largest export with the next size down (1M vs 100k).
    previous, largest = sorted(sizes)[-2:]
    for fmt in FORMATS:
        growth = results[f"{largest}/{fmt}"]["peak_rss_mb"] - results[f"{previous}/{fmt}"]["peak_rss_mb"]
        results[f"rss_growth_mb/{fmt}"] = round(growth, 1)
        results[f"rss_within_{MAX_RSS_GROWTH_MB:.0f}mb/{fmt}"] = growth <= MAX_RSS_GROWTH_MB
    return results


def bench_browsee(url: str, out_dir: Path, sessions: int = 100_000) -> dict:
    """Browsee sessions to each format (one request in flight, 100 per page): rows/s and peak RSS."""
    configure_sandbox(url, browsee_sessions_per_day=sessions)
    return {f"{sessions}/{fmt}": _child(url, "browsee", fmt, out_dir, page_size=100) for fmt in FORMATS}


def bench_paced_pages(url: str, out_dir: Path, pages: int = 1000, latency_ms: int = 300) -> dict:
    """Wall time of ``pages`` pages at ``latency_ms`` within 100 requests / 10 s (server enforces it too)."""
    page_size = 10
    configure_sandbox(
        url,
        openpanel_events_per_day=pages * page_size,
        openpanel_rate_limit=100,
        latency_ms={"openpanel": latency_ms},
    )
    measured = _child(url, "openpanel", "jsonl", out_dir, paced=True, page_size=page_size)
    configure_sandbox(url, latency_ms={"openpanel": 0})
    return {
        **measured,
        # 100 requests per sliding 10 s: request 100k + 1 may start 10 s after request k*100 + 1.
        "rate_bound_s": (pages - 1) // 100 * 10,
        "latency_bound_s": pages * latency_ms / 1000,
    }


def run(quick: bool = False, url: str | None = None) -> dict[str, Any]:
    """Every measurement; ``quick`` uses small sizes (10k/100k events, 10k sessions, 150 pages)."""
    with contextlib.ExitStack() as stack:
        base = url or stack.enter_context(sandbox_process())
        out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-openpanel-")))
        return {
            "openpanel_events": bench_events(
                base, out_dir, (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
            ),
            "browsee_sessions": bench_browsee(base, out_dir, 10_000 if quick else 100_000),
            "openpanel_paced_pages": bench_paced_pages(base, out_dir, 150 if quick else 1000),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("openpanel", "browsee"), help="(internal) run one export here")
    parser.add_argument("--fmt", choices=FORMATS, default="jsonl")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--paced", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--url", help="a running sandbox; default: start one")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(export_here(args.child, args.fmt, args.out, args.paced, args.page_size)))
        return 0
    print(json.dumps(run(args.quick, args.url), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
