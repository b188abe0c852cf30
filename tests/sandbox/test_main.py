"""``make sandbox`` / ``python -m ...sandbox``: a port that does not clash with Airflow's api-server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from airflow_provider_analytics_export.sandbox.__main__ import DEFAULT_PORT, build_parser

REPO = Path(__file__).resolve().parents[2]


def airflow_default_port(section: str, key: str) -> int:
    """The port Airflow uses when nothing is configured (its shipped default, not this machine's)."""
    from airflow.configuration import conf

    return int(conf.get_default_value(section, key))


def test_sandbox_default_port_is_not_airflows_api_server_port():
    assert build_parser().parse_args([]).port == DEFAULT_PORT
    assert DEFAULT_PORT != airflow_default_port("api", "port") == 8080


def test_make_sandbox_uses_the_modules_default_port():
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-n", "sandbox"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    command = recipe.stdout.strip().splitlines()[-1]
    assert command.endswith("-m airflow_provider_analytics_export.sandbox"), command  # no --port 8080
