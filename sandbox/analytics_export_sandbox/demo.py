"""``make demo``: run every example DAG with real Airflow against the sandbox and show the files.

Starts the sandbox in-process, migrates a fresh SQLite AIRFLOW_HOME (``--airflow-home``, kept
afterwards, with each DAG run's output and so its task logs in ``runs/``), runs ``airflow dags test``
for each example DAG (the latest day whose windows have settled), saying what it is doing as it
goes, then prints every file written under the output folder with its row count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

from .airflow_runner import AirflowRunner
from .config import SandboxConfig
from .server import SandboxServer

#: Every example DAG's windows end at its logical date's midnight, and an export waits for its
#: window to settle first (Sealmetrics longest: 2 h), so just after midnight today's windows would
#: hold the demo for hours (CI at 00:03 UTC waited out a 15-minute timeout). Longest settle plus a margin.
SETTLED_AFTER = dt.timedelta(hours=2, minutes=15)


def settled_logical_date(now: dt.datetime) -> str:
    """Midnight UTC of the latest day whose windows, ending then, have settled by ``now``."""
    day = (now.astimezone(dt.timezone.utc) - SETTLED_AFTER).date()
    return f"{day.isoformat()}T00:00:00+00:00"


def count_rows(path: Path) -> int:
    """Rows in an exported file, by format (parquet from its footer, without reading data)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # only the demo's report needs it, never the server

        return int(pq.ParquetFile(path).metadata.num_rows)
    if path.suffix == ".json":
        return len(json.loads(path.read_bytes() or b"[]"))
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if path.suffix == ".csv" else lines


def list_dag_ids(runner: AirflowRunner) -> list[str]:
    """DAG ids parsed from the dags folder (``--local``: straight from the files, not the DB)."""
    result = runner.cli("dags", "list", "--local", "-o", "json")
    listing = next(line for line in result.stdout.splitlines() if line.startswith("["))
    return sorted(entry["dag_id"] for entry in json.loads(listing))


def print_report(output: Path, results: dict[str, tuple[bool, float]]) -> None:
    print("\nDAG runs")
    for dag_id, (ok, seconds) in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'}  {dag_id:<45} {seconds:6.1f} s")
    files = sorted(p for p in output.rglob("*") if p.is_file() and not p.name.startswith("."))
    print(f"\nFiles under {output}")
    width = max((len(str(p.relative_to(output))) for p in files), default=10)
    print(f"  {'file':<{width}}  {'rows':>9}  {'bytes':>11}")
    for path in files:
        print(
            f"  {str(path.relative_to(output)):<{width}}  {count_rows(path):>9,}  {path.stat().st_size:>11,}"
        )
    print(f"\n{len(files)} files, {sum(count_rows(p) for p in files):,} rows in total")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="demo-output", help="folder the example DAGs write into")
    # Required: the example DAGs live in the repository, not in any installed distribution.
    parser.add_argument("--dags-folder", required=True, help="folder of DAG files to run")
    parser.add_argument("--dag", action="append", help="run only these DAG ids (repeatable)")
    parser.add_argument(
        "--airflow-home",
        default=".demo-airflow",
        help="AIRFLOW_HOME, emptied at the start and kept: each DAG run's output (task logs) in runs/",
    )
    args = parser.parse_args(argv)

    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    home = Path(args.airflow_home).resolve()
    shutil.rmtree(home, ignore_errors=True)  # a clean metadata DB each time, as a first run gets
    runs = home / "runs"
    logical_date = settled_logical_date(dt.datetime.now(dt.timezone.utc))
    config = SandboxConfig()
    config.sealmetrics_job_delay = 3.0
    with SandboxServer(config) as sandbox:
        print(f"Sandbox on {sandbox.url}; Airflow home {home}; writing to {output}", flush=True)
        runner = AirflowRunner(home, Path(args.dags_folder), sandbox.url, output.as_uri())
        step("Creating Airflow's metadata database (SQLite; about half a minute)")
        runner.migrate()
        step("Parsing the example DAGs")
        dag_ids = args.dag or list_dag_ids(runner)
        runs.mkdir(parents=True, exist_ok=True)
        results: dict[str, tuple[bool, float]] = {}
        for number, dag_id in enumerate(dag_ids, 1):
            step(f"[{number}/{len(dag_ids)}] airflow dags test {dag_id} {logical_date}")
            started = time.monotonic()
            run = runner.dags_test(dag_id, logical_date, check=False)
            ok = run.returncode == 0 and "state=success" in run.stdout + run.stderr
            results[dag_id] = (ok, time.monotonic() - started)
            log = runs / f"{dag_id}.log"
            log.write_text(run.stdout + run.stderr)
            outcome = "ok  " if ok else "FAIL"
            print(f"      {outcome} in {results[dag_id][1]:.0f} s; output: {log}", flush=True)
            if not ok:
                print((run.stdout + run.stderr)[-3000:], file=sys.stderr)
    print_report(output, results)
    print(f"\nTask logs (each DAG run's output, as `airflow dags test` prints them): {runs}")
    return 0 if all(ok for ok, _ in results.values()) else 1


def step(what: str) -> None:
    """One progress line, at once (the steps take from seconds to a minute each)."""
    print(f"{dt.datetime.now():%H:%M:%S} {what} ...", flush=True)


if __name__ == "__main__":
    sys.exit(main())
