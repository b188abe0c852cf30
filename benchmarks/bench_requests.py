"""Requests each export shape costs against the sandbox, next to the fewest that shape needs (issue 25).

A shape is an API and a window (a past day, a past hour, today's last hour, a profile, a
chart, Braze/Peer5 series, a Sealmetrics stream or job). The minimum is what any reader of
that API needs: a page per ``page_size`` rows, plus one page where a window's rows straddle
a page boundary (they do not start at an offset the API pages by), one request per chart,
one per chunk the API's per-request limits force, and for a Sealmetrics job its estimate,
create, one status and download. ``tests/test_requests_per_shape.py`` holds every shape to
``minimum + 2``.

    python -m benchmarks.bench_requests [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 4, 15, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
#: Peer5 serves 1m buckets only for the last 7 days: its shapes run at a pinned "now".
PEER5_NOW = dt.datetime(2024, 6, 15, 12, tzinfo=UTC)
#: Issue 25: requests a shape may spend beyond its minimum.
SLACK = 2
#: A Sealmetrics job's run time in the sandbox.
JOB_DELAY_S = 0.5


@dataclass(frozen=True)
class Shape:
    """One export shape: the API, how to run it (operator kwargs, context) and its minimum."""

    name: str
    api: str
    run: Callable[[Path], dict[str, Any]]
    minimum: Callable[[dict[str, Any]], int]
    #: Sandbox settings for this shape alone (the sandbox is reset before each shape).
    config: dict[str, Any] = field(default_factory=dict)


def _pages(rows: int, size: int, straddle: bool = False) -> int:
    """Pages of ``size`` that ``rows`` need; one more when they may straddle a page boundary."""
    return max(1, math.ceil(rows / size) + (1 if straddle and rows else 0))


def _hour_up_to_now() -> tuple[dt.datetime, dt.datetime]:
    """Today's last hour at any time of day (the last whole hour is yesterday's until 01:00 UTC)."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    return now - HOUR, now


def shapes(page_size: int = 1000) -> list[Shape]:
    """Every shape, for OpenPanel pages of ``page_size`` (Browsee pages are at most 100)."""
    from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
    from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
    from airflow_provider_analytics_export.operators.openpanel import (
        OpenPanelChartsExportOperator,
        OpenPanelEventsExportOperator,
    )
    from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
    from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator

    def events(name: str, window: Callable[[], tuple[dt.datetime, dt.datetime]], **kwargs: Any) -> Callable:
        def run(out: Path) -> dict[str, Any]:
            start, end = window()
            op = OpenPanelEventsExportOperator(
                task_id=name, destination=(out / f"{name}.jsonl").as_uri(), page_size=page_size, **kwargs
            )
            return op.execute({"data_interval_start": start, "data_interval_end": end})

        return run

    def operator(cls: type, name: str, context: dict[str, Any], **kwargs: Any) -> Callable:
        def run(out: Path) -> dict[str, Any]:
            return cls(task_id=name, destination=(out / f"{name}.jsonl").as_uri(), **kwargs).execute(context)

        return run

    day = {"data_interval_start": DAY, "data_interval_end": DAY + 24 * HOUR}
    peer5_day = {"data_interval_start": PEER5_NOW - 30 * HOUR, "data_interval_end": PEER5_NOW}
    four_days = {"data_interval_start": DAY, "data_interval_end": DAY + 4 * 24 * HOUR}
    # Polled at the job's own pace: the fewest status calls are then one, after the job's run time.
    sealmetrics = {
        "export_type": "pages",
        "output_format": "csv",
        "poll_interval": JOB_DELAY_S,
        "deferrable": False,
    }
    return [
        Shape(
            "OpenPanel past day",
            "openpanel",
            events("op_day", lambda: (DAY, DAY + 24 * HOUR)),
            lambda r: _pages(r["rows"], page_size),
        ),
        Shape(
            "OpenPanel past hour (10:00)",
            "openpanel",
            events("op_hour", lambda: (DAY + 10 * HOUR, DAY + 11 * HOUR)),
            lambda r: _pages(r["rows"], page_size, straddle=True),
        ),
        Shape(
            "OpenPanel past hour (00:00)",
            "openpanel",
            events("op_hour0", lambda: (DAY, DAY + HOUR)),
            lambda r: _pages(r["rows"], page_size, straddle=True),
        ),
        Shape(
            "OpenPanel today's last full hour",
            "openpanel",
            events("op_today", _hour_up_to_now),
            lambda r: _pages(r["rows"], page_size, straddle=True),
        ),
        Shape(
            "OpenPanel profile, past day",
            "openpanel",
            events("op_profile", lambda: (DAY, DAY + 24 * HOUR), profile_id="user_1"),
            lambda r: _pages(r["rows"], page_size),
        ),
        Shape(
            "OpenPanel chart, a week by day",
            "openpanel",
            operator(
                OpenPanelChartsExportOperator,
                "op_chart",
                {"data_interval_start": DAY, "data_interval_end": DAY + 7 * 24 * HOUR},
                events=[{"name": "screen_view"}],
            ),
            lambda r: 1,
        ),
        Shape(
            "Browsee past day",
            "browsee",
            operator(BrowseeSessionsExportOperator, "browsee_day", day),
            lambda r: _pages(r["rows"], 100),
        ),
        Shape(
            "Braze 150 hours",
            "braze",
            operator(
                BrazeSessionsExportOperator,
                "braze_hours",
                {},
                start=DAY.isoformat(),
                end=(DAY + 150 * HOUR).isoformat(),
                unit="hour",
            ),
            lambda r: math.ceil(150 / 100),  # 100 buckets per request
        ),
        Shape(
            "Braze 60 days",
            "braze",
            operator(
                BrazeSessionsExportOperator,
                "braze_days",
                {},
                start=DAY.isoformat(),
                end=(DAY + 60 * 24 * HOUR).isoformat(),
                unit="day",
            ),
            lambda r: 1,
        ),
        Shape(
            "Peer5 30 hours by minute",
            "peer5",
            operator(Peer5ExportOperator, "peer5_1m", peer5_day, metrics=["http"], interval="1m"),
            lambda r: math.ceil(30 / 6),  # 1m buckets: 6 hours per request at most
        ),
        Shape(
            "Peer5 30 hours by hour",
            "peer5",
            operator(Peer5ExportOperator, "peer5_1h", peer5_day, metrics=["http"], interval="1h"),
            lambda r: 1,
        ),
        Shape(
            "Sealmetrics stream, a day of pages",
            "sealmetrics",
            operator(SealmetricsExportOperator, "sm_stream", day, **sealmetrics),
            lambda r: 2,  # the estimate (stream or job?), the stream
        ),
        Shape(
            "Sealmetrics job, 4 days of pages",
            "sealmetrics",
            operator(SealmetricsExportOperator, "sm_job", four_days, **sealmetrics),
            lambda r: 4,  # the estimate, the create, one status that says done, the download
            {"sealmetrics_job_delay": JOB_DELAY_S},
        ),
    ]


@contextmanager
def sandbox(events_per_day: int) -> Iterator[Any]:
    """A sandbox of its own, every default connection pointing at it, Peer5's clock pinned."""
    from airflow_provider_analytics_export.hooks import peer5
    from analytics_export_sandbox import SandboxServer, connection_env

    server = SandboxServer().start()
    try:
        with (
            mock.patch.dict(os.environ, connection_env(server.url)),
            mock.patch.object(peer5, "now", return_value=PEER5_NOW),
        ):
            server.config.update({"openpanel_events_per_day": events_per_day})
            yield server
    finally:
        server.stop()


def _logged(server: Any, api: str) -> int:
    """Requests the sandbox logged for ``api``, once its log is settled.

    A streamed answer is logged after its last byte left, which the client may have read
    (and returned from the export) a moment before the server's thread appends the entry.
    """
    count, deadline = -1, time.monotonic() + 2.0
    while time.monotonic() < deadline:
        now = sum(1 for entry in server.requests_log if entry["api"] == api)
        if now == count:
            return now
        count = now
        time.sleep(0.05)
    return count


def measure(events_per_day: int = 100_000, page_size: int = 1000) -> list[dict[str, Any]]:
    """Run every shape once; ``shape, rows, requests, minimum, ratio, within`` (minimum + 2) per shape."""
    out: list[dict[str, Any]] = []
    with sandbox(events_per_day) as server, tempfile.TemporaryDirectory() as tmp:
        for shape in shapes(page_size):
            server.reset()
            # Peer5's pinned clock would put OpenPanel's "today" in 2024: only Peer5 runs pinned.
            server.config.update(
                {"now": PEER5_NOW.timestamp() if shape.api == "peer5" else None, **shape.config}
            )
            result = shape.run(Path(tmp))
            requests = _logged(server, shape.api)
            minimum = shape.minimum(result)
            out.append(
                {
                    "shape": shape.name,
                    "rows": int(result["rows"]),
                    "requests": requests,
                    "minimum": minimum,
                    "ratio": round(requests / minimum, 2),
                    "within": "PASS" if requests <= minimum + SLACK else "FAIL",
                }
            )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """``make bench`` entry: the table at 100,000 OpenPanel events a day (24,000 with ``quick``)."""
    rows = measure(24_000 if quick else 100_000)
    return {"requests per shape": {row["shape"]: row for row in rows}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rows = measure(24_000 if args.quick else 100_000)
    print(f"{'shape':36} {'rows':>8} {'requests':>8} {'minimum':>8} {'ratio':>6} within")
    for row in rows:
        print(
            f"{row['shape']:36} {row['rows']:>8,} {row['requests']:>8} {row['minimum']:>8} {row['ratio']:>6} "
            f"{row['within']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
