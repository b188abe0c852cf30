"""Airflow provider: export web-analytics data from five SaaS APIs to object storage.

This module stays import-light: Airflow's ProvidersManager calls ``get_provider_info``
while discovering providers, long before any hook or operator is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PKG = "airflow_provider_analytics_export"
_APIS = ("browsee", "braze", "openpanel", "peer5", "sealmetrics")
_INTEGRATIONS = {
    "browsee": ("Browsee", "https://docs.browsee.io/"),
    "braze": ("Braze", "https://www.braze.com/docs/api/endpoints/export/sessions/get_sessions_analytics/"),
    "openpanel": ("OpenPanel", "https://openpanel.dev/docs/api/export"),
    "peer5": ("Peer5", "https://docs.peer5.com/server-api/export/"),
    "sealmetrics": ("Sealmetrics", "https://sealmetrics.com/docs/api/exports"),
}


def _connection_type(
    api: str,
    hook_class: str,
    hidden: list[str],
    relabeling: dict[str, str],
    placeholders: dict[str, str],
) -> dict[str, Any]:
    """One connection type's form: relabelled standard fields plus its declared extras."""
    from airflow_provider_analytics_export.extras import extra_fields

    return {
        "connection-type": api,
        "hook-class-name": f"{_PKG}.hooks.{api}.{hook_class}",
        "hook-name": _INTEGRATIONS[api][0],
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra", *hidden],
            "relabeling": relabeling,
            "placeholders": placeholders,
        },
        "conn-fields": {name: field.form_field() for name, field in extra_fields(api).items()},
    }


def _modules(layer: str, apis: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"integration-name": _INTEGRATIONS[api][0], "python-modules": [f"{_PKG}.{layer}.{api}"]}
        for api in apis
    ]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-analytics-export",
        "name": "Analytics Export",
        "description": "Export Browsee, Braze, OpenPanel, Peer5 and Sealmetrics data to object storage.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": name, "external-doc-url": url, "tags": ["service"]}
            for name, url in _INTEGRATIONS.values()
        ],
        "hooks": _modules("hooks", _APIS),
        "operators": _modules("operators", _APIS),
        "sensors": _modules("sensors", ("sealmetrics",)),
        "triggers": _modules("triggers", ("sealmetrics",)),
        "extra-links": [f"{_PKG}.links.BrazeDashboardLink", f"{_PKG}.links.BrowseeSegmentsLink"],
        "connection-types": [
            _connection_type(
                "browsee",
                "BrowseeHook",
                hidden=[],
                relabeling={"host": "API base URL", "login": "API key", "password": "Secret key"},
                placeholders={
                    "host": "https://api.browsee.io",
                    "login": "your project API key",
                    "password": "secret key from Settings > Integrations",
                },
            ),
            _connection_type(
                "braze",
                "BrazeHook",
                hidden=["login"],
                relabeling={"host": "REST endpoint", "password": "REST API key"},
                placeholders={
                    "host": "https://rest.iad-01.braze.com",
                    "password": "REST API key with sessions.data_series permission",
                },
            ),
            _connection_type(
                "openpanel",
                "OpenPanelHook",
                hidden=[],
                relabeling={"host": "API base URL", "login": "Client ID", "password": "Client secret"},
                placeholders={
                    "host": "https://api.openpanel.dev",
                    "login": "client id of a read or root client",
                    "password": "client secret",
                },
            ),
            _connection_type(
                "peer5",
                "Peer5Hook",
                hidden=["login"],
                relabeling={"host": "API base URL", "password": "Auth token"},
                placeholders={"host": "https://control.peer5.com", "password": "X-Auth-Token value"},
            ),
            _connection_type(
                "sealmetrics",
                "SealmetricsHook",
                hidden=["login"],
                relabeling={"host": "API base URL", "password": "API key"},
                placeholders={"host": "https://api.sealmetrics.com", "password": "sm_..."},
            ),
        ],
    }
