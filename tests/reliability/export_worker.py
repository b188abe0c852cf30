"""Run one export in this process, as a worker would: ``python -m tests.reliability.export_worker SPEC``.

SPEC is JSON: ``{"operator": name, "kwargs": {...}, "start": iso, "end": iso, "state": path|null}``.
The kill tests SIGKILL this process midway. ``state`` backs the task state store with a JSON
file, standing in for Airflow's own store so a re-run can reconnect to the job it created.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)

OPERATORS: dict[str, type] = {
    "browsee": BrowseeSessionsExportOperator,
    "peer5": Peer5ExportOperator,
    "sealmetrics": SealmetricsExportOperator,
    "sealmetrics_download": SealmetricsDownloadExportOperator,
}


class FileStateStore:
    """get/set on a JSON file: survives the SIGKILL of the process using it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, key: str) -> Any:
        return json.loads(self.path.read_text()).get(key) if self.path.exists() else None

    def set(self, key: str, value: Any) -> None:
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.path.write_text(json.dumps({**data, key: value}))


def main(spec: dict[str, Any]) -> dict[str, Any]:
    op = OPERATORS[spec["operator"]](task_id="killed_export", **spec["kwargs"])
    context: dict[str, Any] = {
        "data_interval_start": dt.datetime.fromisoformat(spec["start"]),
        "data_interval_end": dt.datetime.fromisoformat(spec["end"]),
    }
    if spec.get("state"):
        context["task_state_store"] = FileStateStore(Path(spec["state"]))
    return op.execute(context)


if __name__ == "__main__":
    print(json.dumps({"result": main(json.loads(sys.argv[1]))}, default=str))
