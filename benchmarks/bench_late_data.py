"""What revisiting costs: a daily OpenPanel export with ``revisit=3`` against one without (issue 24).

Both run the task as Airflow does (execute, then the post_execute hook that revisits) for the same
day, against a sandbox in its own process, and count the requests the sandbox saw and the wall time.
The revisited partitions exist already (an earlier run wrote them) and nothing changed, so the run
also shows that an unchanged revisit rewrites nothing. Run alone: ``python -m benchmarks.bench_late_data``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.bench_baselines import configure_sandbox, sandbox_env, sandbox_process

DAY = dt.datetime(2024, 4, 15, tzinfo=dt.timezone.utc)
REVISIT = 3


def _requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_sandbox/requests") as response:  # noqa: S310 - local sandbox
        return sum(1 for entry in json.load(response)["requests"] if entry.get("api") == "openpanel")


def _export(revisit: int, out: Path) -> dict[str, Any]:
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_provider_analytics_export.late_data import window_context
    from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

    with DAG(f"bench_revisit_{revisit}", schedule=None):
        operator = OpenPanelEventsExportOperator(
            task_id="events", destination=f"{out.as_uri()}/{{{{ ds }}}}/events.jsonl", revisit=revisit
        )
    task = operator.prepare_for_execution()
    context: Any = {
        **window_context({}, (DAY, DAY + dt.timedelta(days=1))),
        "task": task,
        "outlet_events": OutletEventAccessors(),
    }
    task.render_template_fields(context)
    started = time.perf_counter()
    result = task.execute(context)
    task._post_execute_hook(context, result)
    return {"seconds": time.perf_counter() - started, "result": result}


def run(quick: bool = False) -> dict[str, Any]:
    """Requests and wall time of one daily run without revisit and with ``revisit=3``."""
    rows: list[dict[str, Any]] = []
    with sandbox_process() as url, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(sandbox_env(url))
        out = Path(tmp)
        for revisit in (REVISIT, 0, REVISIT):  # the first run writes the earlier days
            configure_sandbox(url)
            measured = _export(revisit, out)
            rows.append(
                {
                    "revisit": revisit,
                    "requests": _requests(url),
                    "wall s": round(measured["seconds"], 2),
                    "rows": measured["result"]["rows"],
                    "replaced": sum(r["replaced"] for r in measured["result"].get("revisits", [])),
                }
            )
    without, with_revisit = rows[1], rows[2]
    ratio = with_revisit["requests"] / without["requests"]
    return {
        "runs": rows[1:],
        "targets": [
            {
                "target": f"daily OpenPanel run: revisit={REVISIT} costs 1+{REVISIT} windows of requests",
                "measured": f"{with_revisit['requests']} vs {without['requests']} requests ({ratio:.1f}x)",
                "passed": with_revisit["requests"] == (1 + REVISIT) * without["requests"],
            },
            {
                "target": "an unchanged revisit rewrites nothing",
                "measured": f"{with_revisit['replaced']} partitions replaced",
                "passed": with_revisit["replaced"] == 0,
            },
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1, default=str))
