"""sealmetrics_exports_daily run by real Airflow (deferral included) against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.credentials import CREDENTIALS
from analytics_export_sandbox.data import sealmetrics_file_chunks

DAY = "2024-03-10"
#: `airflow dags test` infers the daily interval that ends at the logical date.
INTERVAL_DAY = "2024-03-09"
MAPPED_TYPES = ("sources", "pages", "microconversions", "time_series")


def _expected(sandbox: SandboxServer, export_type: str) -> bytes:
    params = {
        "site_id": CREDENTIALS["sealmetrics"]["site_id"],
        "export_type": export_type,
        "date_from": INTERVAL_DAY,
        "date_to": INTERVAL_DAY,
        "filters": {},
    }
    return b"".join(sealmetrics_file_chunks(sandbox.config, params, "csv"))


def test_daily_run_downloads_each_export_byte_for_byte(
    airflow_run, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    sandbox_reset.config.update({"sealmetrics_job_delay": 12.0})

    result = airflow_run("sealmetrics_exports_daily", DAY)

    day_dir = export_root / "sealmetrics" / INTERVAL_DAY
    for export_type in MAPPED_TYPES:
        assert (day_dir / f"{export_type}.csv").read_bytes() == _expected(sandbox_reset, export_type)
    # The create/wait/download chain has its own file: two jobs never write one file.
    chain_file = day_dir / "step_by_step" / "microconversions.csv"
    assert chain_file.read_bytes() == _expected(sandbox_reset, "microconversions")
    assert not [path for path in day_dir.rglob("*") if path.name.endswith(".partial")]

    calls = [(entry["method"], entry["path"]) for entry in sandbox_reset.requests_log]
    # microconversions (12,000 rows/day) needs a background job, twice: chain + mapped task.
    assert calls.count(("POST", "/api/v1/exports")) == 2
    # The other three are small: estimate says no background job, so they are streamed.
    assert calls.count(("POST", "/api/v1/exports/stream")) == 3
    assert calls.count(("GET", "/api/v1/exports/download/<token>")) == 2
    # The mapped microconversions wait was deferred to the trigger while the 12 s job ran.
    output = result.stdout + result.stderr
    # `dags test` runs one task at a time and a trigger inline, so by the time the sensor runs
    # the chain's job has finished: the sensor's first poke succeeds without deferring.
    assert output.count("Pausing task as DEFERRED") >= 1
    assert "[DAG TEST] Trigger completed" in output
    assert "SealmetricsExportTrigger" in output and "status=generating" in output
    assert "sm_sbx_api_key" not in output
    # Every task that wrote a file ends with its closing line, the deferred one after resuming.
    closing = rf"Export written: \S+/sealmetrics/{INTERVAL_DAY}/(\S+\.csv) rows=\d+ .*? requests=(\d+)"
    written = re.findall(closing, output)
    assert sorted(name for name, _ in written) == sorted(
        ["step_by_step/microconversions.csv", *(f"{t}.csv" for t in MAPPED_TYPES)]
    ), written
    assert all(int(requests) >= 1 for _, requests in written)
