"""``make bench``: every benchmark in one run, written to benchmarks/results.md with the machine and date.

Benchmarks (``--only`` picks some):

- ``baselines``: 1M OpenPanel events: plain requests loop (the floor), HttpOperator, ours (jsonl, parquet).
- ``openpanel``: OpenPanel/Browsee exports at several sizes; 1,000 pages at 300 ms under 100 req / 10 s.
- ``sealmetrics``: a 500 MB download vs a plain ``requests`` copy; 500 concurrent triggers in one loop.
- ``parse``: import cost of every operator/sensor/trigger on top of ``airflow.sdk``.
- ``limits``: latency the Redis limit backend adds per request, vs the machine-wide one; and
  (issue 25) exports at the rate bound against the sandbox's own limits: 1,000 OpenPanel pages
  in one process and in four (machine-wide, Redis), 100 Browsee pages at 100 ms beside two
  floors (a bare requests loop, raw HTTP on a socket), 429s counted.
- ``late_data``: requests of a daily OpenPanel run with a 3-day revisit against one without.
- ``requests``: requests per export shape vs the fewest it needs (shape, rows, requests, minimum,
  ratio, within minimum + 2).

Every issue-25 target in one run (about 8 minutes): ``python -m benchmarks.run --only limits,requests``.

Every export runs in a fresh Python process (its own peak RSS). ``--quick`` uses small sizes
(a few minutes); the full run takes about half an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_baselines, bench_parse

HERE = Path(__file__).resolve().parent
BENCHES: tuple[str, ...] = (
    "baselines",
    "openpanel",
    "sealmetrics",
    "parse",
    "limits",
    "late_data",
    "requests",
)
Target = dict[str, Any]


# -- machine --------------------------------------------------------------------------------------
def _first(path: str, prefix: str) -> str:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    ram_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    commit = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "Date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "Commit": commit or "unknown",
        "CPU": _first("/proc/cpuinfo", "model name"),
        "Cores": str(os.cpu_count()),
        "RAM": f"{int(ram_kb) / 1024**2:.1f} GiB" if ram_kb.isdigit() else "unknown",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Airflow": _version("apache-airflow"),
        "requests / pyarrow": f"{_version('requests')} / {_version('pyarrow')}",
    }


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


# -- running --------------------------------------------------------------------------------------
def call(func: Callable[..., Any], **options: Any) -> Any:
    """Call a benchmark entry point with the options it accepts (the modules differ)."""
    accepted = inspect.signature(func).parameters
    return func(**{key: value for key, value in options.items() if key in accepted})


def run_bench(name: str, quick: bool, repeats: int) -> dict[str, Any]:
    """One benchmark's raw result (a dict), or the error it raised."""
    if name == "baselines":
        sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
        return bench_baselines.run(sizes, repeats=repeats)
    if name == "parse":
        return bench_parse.run(quick=quick)
    module = importlib.import_module(f"benchmarks.bench_{name}")
    if hasattr(module, "run"):
        return dict(call(module.run, quick=quick))
    # bench_sealmetrics exposes one function per measurement.
    return {
        "download": call(module.bench_download, mb=50 if quick else 500),
        "triggers": call(module.bench_triggers, count=50 if quick else 500),
    }


# -- targets from the raw results -------------------------------------------------------------------
def _target(text: str, measured: str, passed: bool) -> Target:
    return {"target": text, "measured": measured, "passed": passed}


def openpanel_targets(result: dict[str, Any]) -> list[Target]:
    """Issue 3: flat RSS 1M vs 100k; 1,000 paced pages within 10 % of the 100-per-10-s bound."""
    out: list[Target] = []
    events = result.get("openpanel_events", {})
    for key, value in events.items():
        if key.startswith("rss_growth_mb/"):
            fmt = key.split("/", 1)[1]
            out.append(
                _target(
                    f"OpenPanel {fmt}: peak RSS flat (largest vs next size)", f"{value:+.1f} MB", value <= 30
                )
            )
    paced = result.get("openpanel_paced_pages")
    if paced:
        pages = int(paced["pages"])
        bound = pages / 10  # 100 requests per 10 s
        out.append(
            _target(
                f"{pages:,} OpenPanel pages at 300 ms within 10 % of the rate bound ({bound:.0f} s)",
                f"{paced['seconds']:.1f} s",
                paced["seconds"] <= 1.1 * bound,
            )
        )
    return out


def sealmetrics_targets(result: dict[str, Any]) -> list[Target]:
    """Issue 5: download >= 80 % of a plain requests copy, flat RSS; triggers: RSS and CPU reported."""
    out: list[Target] = []
    download = result.get("download", {})
    plain, ours = download.get("plain_requests"), download.get("operator")
    if plain and ours:
        share = ours["mb_per_s"] / plain["mb_per_s"]
        out.append(
            _target("Sealmetrics download MB/s >= 80 % of plain requests", f"{share:.0%}", share >= 0.8)
        )
        growth = ours.get("rss_growth_mb")
        if growth is not None:
            out.append(
                _target(
                    "Sealmetrics download RSS flat (growth during the download)",
                    f"{growth:+.1f} MB",
                    growth <= 30,
                )
            )
    return out


def requests_targets(result: dict[str, Any]) -> list[Target]:
    """Issue 25 item 1: every shape within its minimum + 2 requests (the table has each shape's)."""
    from benchmarks.bench_requests import SLACK

    rows = list(result["requests per shape"].values())
    over = [row["shape"] for row in rows if row["within"] != "PASS"]
    worst = max(rows, key=lambda row: row["requests"] - row["minimum"])
    return [
        _target(
            f"Every export shape ({len(rows)}) within its minimum + {SLACK} requests",
            f"{len(rows) - len(over)} of {len(rows)}; most over: {worst['shape']} "
            f"{worst['requests']} vs {worst['minimum']}" + (f"; over: {', '.join(over)}" if over else ""),
            not over,
        )
    ]


def targets_of(name: str, result: dict[str, Any]) -> list[Target]:
    if name in ("baselines", "parse", "limits", "late_data"):
        return list(result.get("targets", []))
    derived = {
        "openpanel": openpanel_targets,
        "sealmetrics": sealmetrics_targets,
        "requests": requests_targets,
    }
    return derived[name](result)


# -- markdown -------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return [*lines, ""]


def baselines_section(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    sizes = sorted({events for _, events in result["best"]})
    for events in sizes:
        floor = result["best"][("floor", events)]["rows_per_s"]
        floor_cpu = result["best"][("floor", events)]["cpu_us_per_row"]
        rows = []
        for case in bench_baselines.CASES:
            item = result["best"][(case, events)]
            rows.append(
                {
                    "case": case,
                    "rows/s": round(item["rows_per_s"]),
                    "% of floor": f"{item['rows_per_s'] / floor:.0%}",
                    "wall s": item["seconds"],
                    "client CPU µs/row": item["cpu_us_per_row"],
                    "CPU vs floor": f"{item['cpu_us_per_row'] / floor_cpu:.2f}x",
                    "peak RSS MB": item["peak_rss_mb"],
                    "RSS after imports MB": item["baseline_rss_mb"],
                    "rows/s spread": f"{item['spread']:.0%}",
                    "load 1m before → after": item.get("load", ""),
                }
            )
        lines += [f"**{events:,} events** (best of the repeats by rows/s)", "", *table(rows)]
    matches = result.get("dlt_matches") or {}
    if matches:
        lines += ["**dlt's files against ours** (largest size, matched by `id`)", ""]
        lines += table([{"format": fmt, **match} for fmt, match in matches.items()])
    return lines


def parse_section(result: dict[str, Any]) -> list[str]:
    rows = [
        {"measure": key, **{k: round(v, 1) for k, v in result[key].items()}}
        for key in ("importtime_ms", "wall_ms", "cpu_ms")
    ]
    top = [{"module": name, "self ms": round(ms, 2)} for name, ms in result["top_modules"]]
    return [
        f"{len(result['modules'])} modules, {result['runs']} fresh processes; "
        "ms added on top of `import airflow.sdk`.",
        "",
        *table(rows),
        "Largest self times in the fastest run:",
        "",
        *table(top),
    ]


def generic_section(result: dict[str, Any]) -> list[str]:
    """Nested dicts of measurements as tables (one per measurement), scalars as a list."""
    lines: list[str] = []
    for section, value in result.items():
        if not isinstance(value, dict):
            lines.append(f"- {section}: {_cell(value)}")
            continue
        measured = [{"run": key, **item} for key, item in value.items() if isinstance(item, dict)]
        scalars = {key: item for key, item in value.items() if not isinstance(item, dict)}
        lines += [f"**{section}**", ""]
        if measured:
            lines += table(measured)
        if scalars:
            lines += (
                table([scalars])
                if not measured
                else [*(f"- {k}: {_cell(v)}" for k, v in scalars.items()), ""]
            )
    return [*lines, ""]


def requests_section(result: dict[str, Any]) -> list[str]:
    """One row per shape: what it cost, the fewest it needs, and whether it is within minimum + 2."""
    return table(list(result["requests per shape"].values()))


SECTIONS = {
    "baselines": ("OpenPanel events: floor vs HttpOperator vs ours", baselines_section),
    "openpanel": ("OpenPanel / Browsee exports and rate-limit pacing (issue 3)", generic_section),
    "sealmetrics": ("Sealmetrics download and concurrent triggers (issue 5)", generic_section),
    "parse": ("DAG parse cost", parse_section),
    "requests": ("Requests per export shape vs the fewest it needs (issue 25)", requests_section),
    "limits": (
        "Limits: latency added per request (issue 15); exports at the rate bound (issue 25)",
        lambda result: generic_section({key: value for key, value in result.items() if key != "targets"}),
    ),
    "late_data": ("Late data: a daily OpenPanel run with revisit=3 vs without (issue 24)", generic_section),
}


def render(info: dict[str, str], results: dict[str, dict[str, Any]], command: str, repeats: int) -> str:
    lines = ["# Benchmark results", "", f"`{command}`"]
    every = list(results) == list(BENCHES)
    lines += [
        "(`make bench`); regenerate rather than edit."
        if every
        else f"(only {', '.join(results)} of `make bench`); regenerate rather than edit.",
        "",
    ]
    lines += table([{"": key, "value": value} for key, value in info.items()], ["", "value"])
    lines += ["## Targets", ""]
    all_targets = [
        {"benchmark": name, **target, "passed": "PASS" if target["passed"] else "FAIL"}
        for name, entry in results.items()
        for target in entry.get("targets", [])
    ]
    lines += (
        table(all_targets, ["benchmark", "target", "measured", "passed"]) if all_targets else ["(none)", ""]
    )
    for name, entry in results.items():
        title, section = SECTIONS[name]
        lines += [
            f"## {title}",
            "",
            f"Load average (1 / 5 min) before → after: {entry['load']}; took {entry['seconds']:.0f} s.",
            "",
        ]
        if "error" in entry:
            lines += ["**Failed:**", "", "```", entry["error"], "```", ""]
        else:
            lines += section(entry["result"])
    lines += noise_notes(repeats)
    return "\n".join(lines).rstrip() + "\n"


def noise_notes(repeats: int) -> list[str]:
    return [
        "## Noise",
        "",
        "- The machine has 2 cores shared with the sandbox process (which generates every page) and, "
        "during development, other engineers' test suites: the load averages above show how busy it was. "
        "Wall-clock rows/s move by 10-30 % between runs on a busy machine; client CPU µs/row and peak RSS "
        "are much steadier. Compare cases within one run (they are interleaved), not across runs.",
        f"- Baselines: each case ran {repeats} time(s) per size, interleaved; the table shows the best "
        "rows/s and the spread (max-min)/max over the repeats.",
        "- The sandbox generates each page in Python (~60 ms per 1,000 events), so every case is bounded "
        "by the server at roughly 15-20k rows/s; client CPU µs/row is the cost of the client itself.",
        "- Parse cost is the minimum over fresh processes with bytecode caching on (contention only adds "
        "time); the median is shown next to it.",
        "- Rate bounds: the sandbox answers each request its configured latency after it arrived, its own "
        "work included (its thread wakes 2 ms early, so a late wake-up is not added); the span is first "
        "arrival to last answer by the sandbox's clock. The two floors beside Browsee show how close any "
        "client came to pages x latency on the machine as loaded during the run (the load averages of that "
        "section): a bare requests loop, and raw HTTP on a socket (no client library at all). between_ms: "
        "a page's time from an answer leaving the sandbox to the next request reaching it (client, wire "
        "and waits for a core).",
        "",
    ]


def _names(value: str) -> list[str]:
    """``--only limits,requests``: the benchmarks named, each one of :data:`BENCHES`."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{value!r}: use names among {', '.join(BENCHES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes instead of ~30")
    parser.add_argument(
        "--only",
        action="extend",
        type=_names,
        help=f"run only these benchmarks, comma-separated or repeated: {','.join(BENCHES)}",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="baseline repeats per size (default 2, quick 1)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 2)
    # Bytecode caching on (outside the tree) for every child process, as in any deployment.
    os.environ.update(bench_parse.cached_bytecode_env())
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    info = machine()
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or BENCHES:
        print(f"== {name} ...", flush=True)
        before, started = load(), time.monotonic()
        entry: dict[str, Any] = {}
        try:
            entry["result"] = run_bench(name, args.quick, repeats)
            entry["targets"] = targets_of(name, entry["result"])
        except Exception:  # one broken benchmark must not lose the others' numbers
            entry["error"] = traceback.format_exc()[-3000:]
        entry.update(seconds=time.monotonic() - started, load=f"{before} → {load()}")
        results[name] = entry
        for target in entry.get("targets", []):
            print(
                ("  PASS " if target["passed"] else "  FAIL ") + f"{target['target']}: {target['measured']}"
            )
        if "error" in entry:
            print(entry["error"], file=sys.stderr)
    command = " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)])
    args.output.write_text(render(info, results, command, repeats))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
