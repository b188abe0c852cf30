"""sealmetrics_exports_daily run by real Airflow (deferral included) against the sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analytics_export_sandbox import SandboxServer, connection_env
from analytics_export_sandbox.credentials import CREDENTIALS
from analytics_export_sandbox.sealmetrics import sealmetrics_file_chunks

DAY = "2024-03-10"
#: `airflow dags test` infers the daily interval that ends at the logical date.
INTERVAL_DAY = "2024-03-09"
MAPPED_TYPES = ("sources", "pages", "microconversions", "time_series")


def _expected(sandbox: SandboxServer, export_type: str, day: str = INTERVAL_DAY) -> bytes:
    params = {
        "account_id": CREDENTIALS["sealmetrics"]["account_id"],
        "export_type": export_type,
        "date_from": day,
        "date_to": day,
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


def _jobs_per_export(sandbox: SandboxServer) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for job in sandbox.state["sealmetrics"]["jobs"].values():
        key = (job.params["export_type"], job.params["date_from"], job.params["date_to"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_creates_that_lose_their_answer_still_give_one_job_per_export(
    airflow_run, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    """Deferrable run with every create acting and then dropping the connection: same files, no extra job.

    Every create, not a seeded 70 %: the seeded draws are shared by all requests, whose order
    varies between runs (triggers poll while other tasks create), so a 70 % run once lost no
    create at all and proved nothing. Only ``POST /exports`` can draw this fault kind.
    """
    sandbox_reset.config.update(
        {"sealmetrics_job_delay": 3.0, "faults": {"rate": 1.0, "seed": 3, "kinds": ["create_then_drop"]}}
    )

    result = airflow_run("sealmetrics_exports_daily", "2024-03-12")

    day = "2024-03-11"
    files = [export_root / "sealmetrics" / day / f"{t}.csv" for t in MAPPED_TYPES]
    files.append(export_root / "sealmetrics" / day / "step_by_step" / "microconversions.csv")
    for path in files:
        assert path.read_bytes() == _expected(sandbox_reset, path.stem, day), path
    lost = [e for e in sandbox_reset.requests_log if e["fault"] == "create_then_drop"]
    assert lost, "no create lost its answer: the run proves nothing"
    # Two tasks create a microconversions job (the chain and the mapped task): two, not more.
    assert _jobs_per_export(sandbox_reset) == {("microconversions", day, day): 2}
    output = result.stdout + result.stderr
    assert output.count("Adopted export") == len(lost)
    assert "Pausing task as DEFERRED" in output


def _zoned_connection(sandbox: SandboxServer, zone: str | None) -> dict[str, str]:
    """The example DAG's ``sealmetrics_madrid`` connection with time zone ``zone`` (None: no extra)."""
    conn = json.loads(connection_env(sandbox.url)["AIRFLOW_CONN_SEALMETRICS_MADRID"])
    conn["extra"] = {"account_id": conn["extra"]["account_id"], **({"timezone": zone} if zone else {})}
    return {"AIRFLOW_CONN_SEALMETRICS_MADRID": json.dumps(conn)}


def test_daily_runs_in_the_account_zone_tile_its_local_days(
    airflow_run, sandbox_reset: SandboxServer, export_root: Path
) -> None:
    """A Madrid account on a Madrid daily timetable: each run is one local day, the DST day included."""
    sandbox_reset.config.update({"sealmetrics_job_delay": 2.0})
    env = _zoned_connection(sandbox_reset, "Europe/Madrid")
    for logical_date in ("2024-03-31", "2024-04-01"):  # Madrid days 03-30 and 03-31 (23 hours)
        airflow_run("sealmetrics_exports_local_days", logical_date, **env)

    days = sorted(path.name for path in (export_root / "sealmetrics_local").iterdir())
    assert days == ["2024-03-30", "2024-03-31"]
    for day in days:
        for export_type in ("sources", "microconversions"):
            path = export_root / "sealmetrics_local" / day / f"{export_type}.csv"
            assert path.read_bytes() == _expected(sandbox_reset, export_type, day)
    bodies = sorted(
        (job.params["export_type"], job.params["date_from"], job.params["date_to"])
        for job in sandbox_reset.state["sealmetrics"]["jobs"].values()
    )
    assert bodies == [("microconversions", day, day) for day in days]


@pytest.mark.parametrize(
    ("zone", "conf", "message"),
    [
        (None, None, "time zone UTC: window start=2024-03-28T23:00:00+00:00 is not midnight there"),
        (
            "Europe/Madrid",
            {"start": "2024-03-29T10:00:00+01:00", "end": "2024-03-29T11:00:00+01:00"},
            "time zone Europe/Madrid: window start=2024-03-29T10:00:00+01:00 is not midnight there",
        ),
    ],
    ids=["madrid-day-utc-account", "hourly-window"],
)
def test_a_window_that_is_not_whole_local_days_fails_before_any_request(
    airflow_runner, sandbox_reset: SandboxServer, zone, conf, message
) -> None:
    args = ["dags", "test", "sealmetrics_exports_local_days", "2024-03-30"]
    if conf:
        args += ["--conf", json.dumps(conf)]
    result = airflow_runner.cli(*args, env=_zoned_connection(sandbox_reset, zone), check=False)
    output = result.stdout + result.stderr
    assert "new_state=failed" in output or "state=failed" in output
    assert message in output
    assert [e for e in sandbox_reset.requests_log if e["api"] == "sealmetrics"] == []
