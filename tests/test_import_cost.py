"""Parsing a DAG that uses the provider must not import pandas or pyarrow (they cost seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_provider_analytics_export import get_provider_info

HEAVY = ("pandas", "pyarrow")


def parse_time_modules() -> list[str]:
    info = get_provider_info()
    return [
        module
        for kind in ("operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]


def test_every_operator_sensor_and_trigger_module_is_declared():
    modules = parse_time_modules()
    assert {module.rsplit(".", 2)[-2] for module in modules} == {"operators", "sensors", "triggers"}
    assert len(modules) >= 7


def test_importing_every_operator_sensor_and_trigger_leaves_pandas_and_pyarrow_unimported():
    modules = parse_time_modules()
    code = "\n".join(
        [
            "import json, sys",
            *(f"import {module}" for module in modules),
            f"print(json.dumps([name for name in {list(HEAVY)!r} if name in sys.modules]))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
