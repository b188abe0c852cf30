"""OpenLineage from a real run: execute -> post_execute -> the listener's COMPLETE event.

The unit tests in tests/operators/test_lineage.py build the facets from a given summary; this
runs an example DAG with Airflow's OpenLineage listener writing its events to a file, so the
statistics must come from what the task really returned and really wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from analytics_export_sandbox import SandboxServer


def test_complete_events_carry_the_written_files_and_their_real_counts(
    airflow_run, sandbox_reset: SandboxServer, export_root: Path, tmp_path: Path
) -> None:
    events_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    airflow_run(
        "browsee_sessions_daily",
        "2024-04-15",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(transport),
        AIRFLOW__OPENLINEAGE__NAMESPACE="e2e",
    )

    completes = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if event["eventType"] == "COMPLETE" and event["job"]["name"].startswith("browsee_sessions_daily."):
            completes[event["job"]["name"].split(".", 1)[1]] = event
    assert set(completes) == {"export_sessions_jsonl", "export_sessions_parquet", "export_engagement_csv"}
    written = {path.name: path for path in (export_root / "browsee" / "2024-04-14").iterdir()}
    for event in completes.values():
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
            (sandbox_reset.url, "/api/v1/export/sessions")
        ]
        (output,) = event["outputs"]
        path = written[Path(output["name"]).name]
        assert (output["namespace"], output["name"]) == ("file", str(path))
        statistics = output["outputFacets"]["outputStatistics"]
        assert statistics["size"] == path.stat().st_size
        assert statistics["rowCount"] == 480  # the sandbox's sessions of 2024-04-14
    lines = (written["sessions.jsonl"]).read_text().splitlines()
    assert len(lines) == 480
