"""The provider registers with Airflow: five connection types with their hooks and forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_analytics_export import get_provider_info

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CONN_TYPES = {
    "browsee": "BrowseeHook",
    "braze": "BrazeHook",
    "openpanel": "OpenPanelHook",
    "peer5": "Peer5Hook",
    "sealmetrics": "SealmetricsHook",
}


def test_every_module_listed_in_provider_info_imports():
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
        assert hook.default_conn_name == f"{conn['connection-type']}_default"


def test_airflow_cli_lists_the_provider_and_its_five_connection_types(tmp_path: Path):
    # A throwaway home: an airflow.cfg left in ~/airflow by another Airflow version logs its
    # deprecation warnings to stdout, in front of the JSON.
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}

    def cli(*args: str) -> str:
        return subprocess.run([AIRFLOW, *args, "-o", "json"], capture_output=True, text=True, env=env).stdout

    providers = json.loads(cli("providers", "list"))
    assert "airflow-provider-analytics-export" in {p["package_name"] for p in providers}
    hooks = cli("providers", "hooks")
    listed = {h["connection_type"]: h["class"] for h in json.loads(hooks)}
    for conn_type, hook in CONN_TYPES.items():
        assert listed[conn_type].endswith(f".hooks.{conn_type}.{hook}")


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_connection_forms_relabel_and_hide_fields(providers_manager):
    behaviours = providers_manager.field_behaviours
    assert behaviours["browsee"]["relabeling"] == {
        "host": "API base URL",
        "login": "API key",
        "password": "Secret key",
    }
    assert "login" in behaviours["braze"]["hidden_fields"]
    # Braze has no public default host: the form must say the REST endpoint is required.
    assert behaviours["braze"]["relabeling"]["host"] == "REST endpoint (required)"
    assert behaviours["braze"]["placeholders"]["host"].startswith("required: ")
    assert "https://rest.iad-01.braze.com" in behaviours["braze"]["placeholders"]["host"]
    assert behaviours["openpanel"]["relabeling"]["login"] == "Client ID"
    assert behaviours["sealmetrics"]["relabeling"]["password"] == "API key"
    for conn_type in CONN_TYPES:
        assert {"schema", "port"} <= set(behaviours[conn_type]["hidden_fields"])


def test_connection_forms_offer_the_extra_fields(providers_manager):
    widgets = providers_manager.connection_form_widgets
    assert widgets["extra__openpanel__project_id"].field_name == "project_id"
    assert widgets["extra__sealmetrics__account_id"].field_name == "account_id"
    assert "extra__peer5__timeout" in widgets
