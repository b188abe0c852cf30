"""1M OpenPanel events three ways, side by side: the floor, Airflow's HttpOperator and ours.

- ``floor``: a plain loop of ``requests`` GET + ``json.loads`` + writing JSON lines; no checks,
  no retries, one connection. Nothing simpler can export the data.
- ``http_operator``: ``HttpOperator`` with a ``pagination_function`` and a ``response_filter``
  writing JSON lines; it keeps every page's response until the last one arrived.
- ``ours_jsonl`` / ``ours_parquet``: ``OpenPanelEventsExportOperator`` (checks, retries, limits,
  atomic writer; parquet to the declared, typed schema).
- ``dlt_jsonl`` / ``dlt_parquet``: dlt's REST API source (page-number paginator on ``meta.pages``)
  into its filesystem destination, asking for the same columns as ours: the peer a user would
  pick instead (the ``bench`` extra). Its files are compared with ours row by row.

Each case runs in a fresh Python process, so its peak RSS (VmHWM) and CPU time are its
own; the sandbox runs in another process with the OpenPanel rate limit disabled. Run alone:
``python -m benchmarks.bench_baselines --events 100000``; ``benchmarks.run`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CASES: tuple[str, ...] = ("floor", "http_operator", "ours_jsonl", "ours_parquet", "dlt_jsonl", "dlt_parquet")
DAY = "2024-04-15"
PROJECT = "proj-web"
PAGE_SIZE = 1000
HTTP_CONN_ID = "openpanel_http"
#: The parent puts the columns ours asks for here, so no case imports the provider to know them.
INCLUDES_ENV = "BENCH_OPENPANEL_INCLUDES"
#: Targets from issue 8.
MIN_SHARE_OF_FLOOR = 0.70
MAX_RSS_GROWTH_MB = 30.0
#: Targets from issue 17: client CPU per row as a share of the floor's; parquet RSS over jsonl's.
MAX_CPU_SHARE = {"ours_jsonl": 0.6, "ours_parquet": 1.0}
MAX_PARQUET_RSS_OVER_JSONL_MB = 60.0


# -- the sandbox in its own process --------------------------------------------------------------
@contextlib.contextmanager
def sandbox_process() -> Iterator[str]:
    """Start ``python -m analytics_export_sandbox`` on a free port; yield its URL.

    A separate process keeps the server's CPU and memory out of the measured client's numbers.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "analytics_export_sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Sandbox listening on "):
                url = line.split()[-1]
                break
        else:
            raise RuntimeError("the sandbox exited before listening")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def configure_sandbox(url: str, **config: Any) -> None:
    """POST live config to the sandbox (and reset its state and request log)."""
    for path, body in (("/_sandbox/reset", {}), ("/_sandbox/config", config)):
        request = urllib.request.Request(
            url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


def sandbox_env(url: str) -> dict[str, str]:
    """Connections for the child processes: the sandbox's ``*_default`` ones plus an ``http`` one."""
    from analytics_export_sandbox import connection_env

    host, port = url.removeprefix("http://").rsplit(":", 1)
    http_conn = {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
    return {**connection_env(url), f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(http_conn)}


# -- the cases (run inside the child process) ----------------------------------------------------
def _credentials() -> dict[str, str]:
    from analytics_export_sandbox import CREDENTIALS

    creds = CREDENTIALS["openpanel"]
    return {"openpanel-client-id": creds["client_id"], "openpanel-client-secret": creds["client_secret"]}


def _query(page: int) -> dict[str, Any]:
    """Page ``page`` of the export every case makes: the columns ours asks for, so the same data."""
    includes = os.environ[INCLUDES_ENV]
    return {
        "projectId": PROJECT,
        "start": DAY,
        "end": DAY,
        "limit": PAGE_SIZE,
        "page": page,
        "includes": includes,
    }


def export_floor(url: str, out: Path) -> int:
    """requests + json.loads + JSON lines: the least work that exports every page."""
    import requests

    session = requests.Session()
    session.headers.update(_credentials())
    rows, page, pages = 0, 1, 1
    with out.open("w", encoding="utf-8") as handle:
        while page <= pages:
            response = session.get(f"{url}/export/events", params=_query(page), timeout=60)
            response.raise_for_status()
            body = json.loads(response.content)
            pages = body["meta"]["pages"]
            for row in body["data"]:
                handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            rows += len(body["data"])
            page += 1
    return rows


def export_http_operator(url: str, out: Path) -> int:
    """Airflow's HttpOperator paginating through ``pagination_function``, written by ``response_filter``."""
    from airflow.providers.http.operators.http import HttpOperator

    def next_page(response: Any) -> dict[str, Any] | None:
        meta = response.json()["meta"]
        return {"data": {"page": meta["current"] + 1}} if meta["current"] < meta["pages"] else None

    def write_jsonl(responses: list[Any]) -> int:
        rows = 0
        with out.open("w", encoding="utf-8") as handle:
            for response in responses:
                for row in response.json()["data"]:
                    handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                    rows += 1
        return rows

    operator = HttpOperator(
        task_id="http_operator_export",
        http_conn_id=HTTP_CONN_ID,
        method="GET",
        endpoint="/export/events",
        data=_query(1),
        headers=_credentials(),
        pagination_function=next_page,
        response_filter=write_jsonl,
    )
    return int(operator.execute({}))


def export_ours(url: str, out: Path) -> int:
    """OpenPanelEventsExportOperator over the sandbox's ``openpanel_default`` connection."""
    import datetime as dt

    from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook
    from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

    # The client-side 100-requests-per-10-s pacing is the real API's limit; the sandbox has it
    # disabled here, so pacing off too measures the export itself, like the floor.
    OpenPanelHook.request_limit = None
    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc)
    operator = OpenPanelEventsExportOperator(
        task_id="ours", destination=out.as_uri(), start=start, end=start + dt.timedelta(days=1)
    )
    return int(operator.execute({})["rows"])


def export_dlt(url: str, out: Path) -> int:
    """dlt 1.31: ``rest_api_source`` into ``filesystem`` (``out`` is a folder), same columns as ours."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    fmt = out.suffix.lstrip(".")
    source = rest_api_source(
        {
            "client": {"base_url": url, "headers": _credentials()},
            "resources": [
                {
                    "name": "events",
                    "endpoint": {
                        "path": "export/events",
                        "params": _query(1),
                        "data_selector": "data",
                        "paginator": {
                            "type": "page_number",
                            "base_page": 1,
                            "page_param": "page",
                            "total_path": "meta.pages",
                        },
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{fmt}",
        pipelines_dir=str(out.parent / f".dlt-{fmt}"),
        destination=dlt.destinations.filesystem(bucket_url=out.with_suffix("").as_uri()),
        dataset_name="openpanel",
    )
    pipeline.run(source, loader_file_format=fmt)
    return int(pipeline.last_trace.last_normalize_info.row_counts["events"])


def dlt_files(out: Path) -> list[Path]:
    """The data files dlt wrote for the ``events`` table."""
    fmt = out.suffix.lstrip(".")
    return sorted(out.with_suffix("").glob(f"openpanel/events/*.{fmt}"))


def dlt_rows(out: Path) -> list[dict[str, Any]]:
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [row for file in dlt_files(out) for row in pq.read_table(file).to_pylist()]
    return [json.loads(line) for file in dlt_files(out) for line in file.read_text().splitlines()]


_EXPORTS = {
    "floor": (export_floor, "jsonl"),
    "http_operator": (export_http_operator, "jsonl"),
    "ours_jsonl": (export_ours, "jsonl"),
    "ours_parquet": (export_ours, "parquet"),
    "dlt_jsonl": (export_dlt, "jsonl"),
    "dlt_parquet": (export_dlt, "parquet"),
}


def _status_mb(field: str) -> float:
    """A size from /proc/self/status (Linux), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    """Current resident set size, in MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's own peak resident set size (VmHWM), in MB.

    Not ``ru_maxrss``: Linux carries the parent's peak into a child across fork and exec, so a
    child started by a large parent (the runner, after comparing 1M rows) reports the parent's size.
    """
    return _status_mb("VmHWM")


def run_case_here(case: str, url: str, out_dir: Path) -> dict[str, Any]:
    """Run one case in this process; wall time, CPU time and RSS around the export only."""
    export, suffix = _EXPORTS[case]
    out = out_dir / f"{case}.{suffix}"
    if case == "http_operator":
        import airflow.providers.http.operators.http  # noqa: F401 - import cost is not export cost
    elif case.startswith("ours"):
        import airflow_provider_analytics_export.operators.openpanel  # noqa: F401
    elif case.startswith("dlt"):
        import dlt.sources.rest_api  # noqa: F401

        # A fresh pipeline and folder each time: dlt appends loads and keeps pipeline state.
        for folder in (out.with_suffix(""), out.parent / f".dlt-{suffix}"):
            shutil.rmtree(folder, ignore_errors=True)
    baseline = _rss_mb()
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    rows = export(url, out)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak = max(peak_rss_mb(), children)
    return {
        "case": case,
        "rows": rows,
        "seconds": wall,
        "rows_per_s": rows / wall,
        "cpu_s": cpu,
        "cpu_us_per_row": cpu / rows * 1e6 if rows else 0.0,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "bytes": sum(f.stat().st_size for f in dlt_files(out))
        if case.startswith("dlt")
        else out.stat().st_size,
    }


def _cpu_seconds() -> float:
    """User + system CPU of this process and of any child it waited for (dlt may fork workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# -- the parent: fresh processes, side by side ----------------------------------------------------
def measure(case: str, url: str, events: int, out_dir: Path) -> dict[str, Any]:
    """Serve ``events`` events for the day (no rate limit) and run ``case`` in a fresh process."""
    from airflow_provider_analytics_export.hooks.openpanel_query import EventQuery

    configure_sandbox(url, openpanel_events_per_day=events, openpanel_rate_limit=None)
    env = {
        **os.environ,
        **sandbox_env(url),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # dlt: no telemetry (no network here), plain files like ours (jsonl not gzipped).
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DATA_WRITER__DISABLE_COMPRESSION": "true",
        "DLT_DATA_DIR": str(out_dir / ".dlt-home"),
        INCLUDES_ENV: ",".join(EventQuery.build(page_size=PAGE_SIZE).columns),
    }
    cmd = [sys.executable, "-m", "benchmarks.bench_baselines", "--child", case, "--url", url]
    load_before = os.getloadavg()[0]
    result = subprocess.run(
        [*cmd, "--out", str(out_dir)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["rows"] != events:
        raise RuntimeError(f"{case} exported {measured['rows']} rows, expected {events}")
    return {**measured, "events": events, "load": f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"}


def run(
    sizes: Sequence[int] = (100_000, 1_000_000), repeats: int = 1, url: str | None = None
) -> dict[str, Any]:
    """Every case at every size (best of ``repeats`` by rows/s, all runs kept); returns results + targets.

    After the last size, dlt's files are compared with ours row by row (:func:`compare_with_dlt`).
    """
    with contextlib.ExitStack() as stack:
        base = url or stack.enter_context(sandbox_process())
        out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-baselines-")))
        runs: list[dict[str, Any]] = []
        for events in sizes:
            for _ in range(repeats):
                for case in CASES:  # interleaved, so load from other processes hits every case alike
                    runs.append(measure(case, base, events, out_dir))
        matches = {
            fmt: compare_with_dlt(out_dir / f"ours_{fmt}.{fmt}", out_dir / f"dlt_{fmt}.{fmt}")
            for fmt in ("jsonl", "parquet")
        }
    best = _best(runs)
    return {"runs": runs, "best": best, "dlt_matches": matches, "targets": targets(best, sizes, matches)}


# -- dlt's files against ours, row by row -----------------------------------------------------------
def _flat(row: dict[str, Any], naming: Any | None) -> dict[str, Any]:
    """A row as dlt's normalizer lays it out: nested objects flattened into ``a__b`` columns in
    snake case (``naming``; None for dlt's rows, already named so), lists moved out to child
    tables (so left out here), nulls dropped."""
    out: dict[str, Any] = {}

    def walk(path: list[str], value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk([*path, key], item)
        elif value is not None and not isinstance(value, list):
            out["__".join(path) if naming is None else naming.normalize_path(naming.make_path(*path))] = value

    for key, value in row.items():
        if not key.startswith("_dlt_"):
            walk([key], value)
    return out


def _canonical(value: Any) -> str:
    """One text per value, so both files' rows can be digested: instants as UTC instants and
    numbers as floats (dlt may retype both), everything else as its repr."""
    import datetime as dt

    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return repr(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def _digest(row: dict[str, Any]) -> bytes:
    text = repr(sorted((key, _canonical(value)) for key, value in row.items()))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _iter_rows(files: Sequence[Path], nested: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
    """Rows of jsonl/parquet files, streamed (1M rows as dicts would need gigabytes); ``nested``
    columns hold JSON text (our parquet) and are decoded again."""
    for file in files:
        if file.suffix == ".jsonl":
            with file.open() as handle:
                yield from (json.loads(line) for line in handle)
            continue
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(file).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                yield {k: json.loads(v) if k in nested and v is not None else v for k, v in row.items()}


def compare_with_dlt(ours_path: Path, dlt_out: Path) -> dict[str, Any]:
    """Do dlt's rows hold the same events and values as ours? Matched by ``id``; every field of
    ours that dlt keeps as a column (not lists: dlt moves them to child tables) must be equal."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    from airflow_provider_analytics_export.files.schemas import EXTRA_COLUMN
    from airflow_provider_analytics_export.hooks.openpanel_query import OPENPANEL_EVENTS

    naming = NamingConvention()
    nested = frozenset({c.name for c in OPENPANEL_EVENTS.columns if c.kind == "json"} | {EXTRA_COLUMN})
    ours: dict[str, bytes] = {}
    fields = 0
    for row in _iter_rows([ours_path], nested):
        flat = _flat(row, naming)
        fields += len(flat)
        ours[row["id"]] = _digest(flat)
    differing, seen, example = 0, 0, None
    for row in _iter_rows(dlt_files(dlt_out)):
        seen += 1
        if ours.pop(row["id"], None) != _digest(_flat(row, None)):
            differing += 1
            example = example or row["id"]
    differing += len(ours)  # ours has them, dlt does not
    return {
        "dlt_rows": seen,
        "fields_compared": fields,
        "differing_rows": differing,
        "matches": differing == 0,
        "first_differing_id": example or next(iter(ours), None),
    }


def _best(runs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for item in runs:
        key = (item["case"], item["events"])
        if key not in best or item["rows_per_s"] > best[key]["rows_per_s"]:
            best[key] = {**item, "spread": _spread(runs, key)}
    return best


def _spread(runs: list[dict[str, Any]], key: tuple[str, int]) -> float:
    """(max - min) / max of rows/s over the repeats: the run-to-run noise."""
    rates = [r["rows_per_s"] for r in runs if (r["case"], r["events"]) == key]
    return (max(rates) - min(rates)) / max(rates) if len(rates) > 1 else 0.0


def _target(text: str, measured: str, passed: bool) -> dict[str, Any]:
    return {"target": text, "measured": measured, "passed": passed}


def targets(
    best: dict[tuple[str, int], dict[str, Any]],
    sizes: Sequence[int],
    matches: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Issue 8 (rows/s vs the floor, flat RSS) and issue 17 (CPU per row, parquet RSS, dlt)."""
    small, large = min(sizes), max(sizes)
    out: list[dict[str, Any]] = []
    floor = best[("floor", large)]
    for case in ("ours_jsonl", "ours_parquet"):
        share = best[(case, large)]["rows_per_s"] / floor["rows_per_s"]
        out.append(
            _target(
                f"{case} rows/s >= {MIN_SHARE_OF_FLOOR:.0%} of floor at {large:,} events",
                f"{share:.0%}",
                share >= MIN_SHARE_OF_FLOOR,
            )
        )
        ours_cpu = best[(case, large)]["cpu_us_per_row"]
        cpu = ours_cpu / floor["cpu_us_per_row"]
        out.append(
            _target(
                f"{case} client CPU/row <= {MAX_CPU_SHARE[case]:.1f}x the floor's at {large:,} events",
                f"{cpu:.2f}x ({ours_cpu:.1f} vs {floor['cpu_us_per_row']:.1f} µs)",
                cpu <= MAX_CPU_SHARE[case],
            )
        )
        growth = best[(case, large)]["peak_rss_mb"] - best[(case, small)]["peak_rss_mb"]
        out.append(
            _target(
                f"{case} peak RSS {large:,} vs {small:,} events within {MAX_RSS_GROWTH_MB:.0f} MB",
                f"{growth:+.1f} MB",
                growth <= MAX_RSS_GROWTH_MB,
            )
        )
    parquet, jsonl = best[("ours_parquet", large)]["peak_rss_mb"], best[("ours_jsonl", large)]["peak_rss_mb"]
    out.append(
        _target(
            f"ours_parquet peak RSS within {MAX_PARQUET_RSS_OVER_JSONL_MB:.0f} MB of ours_jsonl's",
            f"{parquet - jsonl:+.1f} MB ({parquet:.0f} vs {jsonl:.0f} MB)",
            parquet - jsonl <= MAX_PARQUET_RSS_OVER_JSONL_MB,
        )
    )
    if ("dlt_parquet", large) in best:
        theirs = best[("dlt_parquet", large)]["peak_rss_mb"]
        out.append(
            _target(
                "ours_parquet peak RSS <= dlt_parquet's",
                f"{parquet:.0f} vs {theirs:.0f} MB",
                parquet <= theirs,
            )
        )
    for fmt, match in (matches or {}).items():
        out.append(
            _target(
                f"dlt_{fmt} file matches ours_{fmt} row for row (by id, every field dlt keeps)",
                f"{match['dlt_rows']:,} rows, {match['fields_compared']:,} fields, "
                f"{match['differing_rows']:,} rows differ",
                bool(match["matches"]),
            )
        )
    growth = best[("http_operator", large)]["peak_rss_mb"] - best[("http_operator", small)]["peak_rss_mb"]
    out.append(
        _target(
            f"HttpOperator peak RSS grows with the export ({small:,} -> {large:,} events)",
            f"{growth:+.1f} MB",
            growth > MAX_RSS_GROWTH_MB,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=CASES, help="(internal) run one case in this process")
    parser.add_argument("--url", help="a running sandbox; default: start one")
    parser.add_argument("--out", type=Path, help="(internal) output directory of --child")
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case_here(args.child, args.url, args.out)))
        return 0
    result = run(args.events, args.repeats, args.url)
    for item in result["runs"]:
        print(json.dumps(item))
    for item in result["targets"]:
        print(("PASS " if item["passed"] else "FAIL ") + item["target"] + ": " + item["measured"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
