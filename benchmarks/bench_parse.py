"""DAG parse cost: what importing every operator, sensor and trigger module adds to ``import airflow.sdk``.

A DAG file that uses this provider imports ``airflow.sdk`` anyway; the provider's share of
parsing is everything its modules import on top of that. Measured in fresh processes with
``python -X importtime`` (the sum of the self times printed after ``airflow.sdk``), next to the
in-process wall and CPU time of the same imports. The machine is shared, so each figure is the
minimum of ``runs`` fresh processes (contention only ever adds time). Each process also
reports whether pandas or pyarrow got imported: they must not be, at parse time.

Bytecode caching is on (as in any deployment), in a cache dir outside the tree, warmed by a
first unmeasured run: with ``PYTHONDONTWRITEBYTECODE=1`` every import would compile its
source and the figures would measure the compiler, not the imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TARGET_MS = 50.0
HEAVY = ("pandas", "pyarrow")
PYCACHE = Path(tempfile.gettempdir()) / "analytics-export-bench-pycache"


def cached_bytecode_env() -> dict[str, str]:
    """This environment with bytecode caching on, cached outside the source tree."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(PYCACHE)}


def provider_modules() -> list[str]:
    """Every operator, sensor and trigger module the provider declares in get_provider_info()."""
    from airflow_provider_analytics_export import get_provider_info

    info = get_provider_info()
    return [
        module
        for kind in ("operators", "sensors", "triggers")
        for entry in info.get(kind, [])
        for module in entry["python-modules"]
    ]


def _child_code(modules: list[str], base: str) -> str:
    imports = "\n".join(f"import {module}" for module in modules)
    return (
        "import json, sys, time\n"
        f"{base}\n"
        "wall0, cpu0 = time.perf_counter(), time.process_time()\n"
        f"{imports}\n"
        "wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0\n"
        f"heavy = [name for name in {list(HEAVY)!r} if name in sys.modules]\n"
        "print(json.dumps({'wall_ms': wall * 1000, 'cpu_ms': cpu * 1000, 'heavy': heavy}))\n"
    )


def importtime_after(stderr: str, marker: str) -> tuple[float, list[tuple[str, float]]]:
    """Sum of ``-X importtime`` self times (ms) printed after the top-level ``marker`` line; top modules."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:") and "|" in line]
    names = [line.rsplit("|", 1)[1] for line in lines]
    start = max(i for i, name in enumerate(names) if name.strip() == marker and not name[1:].startswith(" "))
    after: list[tuple[str, float]] = []
    for line in lines[start + 1 :]:
        self_us = line.split(":", 1)[1].split("|")[0]
        after.append((line.rsplit("|", 1)[1].strip(), int(self_us) / 1000))
    return sum(ms for _, ms in after), sorted(after, key=lambda item: -item[1])[:8]


def measure_once(modules: list[str], base: str = "import airflow.sdk", marker: str = "airflow.sdk") -> dict:
    """One fresh ``python -X importtime`` process importing ``base`` then every module."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _child_code(modules, base)],
        capture_output=True,
        text=True,
        check=True,
        env=cached_bytecode_env(),
    )
    added_ms, top = importtime_after(result.stderr, marker)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "importtime_ms": added_ms, "top": top}


def run(runs: int = 7, quick: bool = False) -> dict[str, Any]:
    """Minimum and median over fresh processes of the import cost added on top of ``import airflow.sdk``."""
    modules = provider_modules()
    measure_once(modules)  # writes the bytecode cache
    samples = [measure_once(modules) for _ in range(3 if quick else runs)]
    best = min(samples, key=lambda sample: sample["importtime_ms"])
    heavy = sorted({name for sample in samples for name in sample["heavy"]})
    summary: dict[str, Any] = {"modules": modules, "runs": len(samples), "heavy_imported": heavy}
    for key in ("importtime_ms", "wall_ms", "cpu_ms"):
        values = [sample[key] for sample in samples]
        summary[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    summary["top_modules"] = best["top"]
    summary["targets"] = [
        {
            "target": f"operators/sensors/triggers import on top of airflow.sdk < {TARGET_MS:.0f} ms",
            "measured": f"{summary['importtime_ms']['min']:.1f} ms (min of {len(samples)})",
            "passed": summary["importtime_ms"]["min"] < TARGET_MS,
        },
        {
            "target": "pandas and pyarrow never imported at parse time",
            "measured": ", ".join(heavy) or "neither imported",
            "passed": not heavy,
        },
    ]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.runs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
