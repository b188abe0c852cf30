"""Fixed sandbox credentials and the Airflow connection values that point at a running sandbox."""

from __future__ import annotations

import json

CREDENTIALS: dict[str, dict[str, str]] = {
    "browsee": {"api_key": "sbx-browsee-api-key", "secret_key": "sbx-browsee-secret-9f3a"},
    "braze": {"api_key": "sbx-braze-rest-key-77c1"},
    "openpanel": {
        # The server accepts only UUID client ids. A root client sees every project of its
        # organization; a read client only its own (here proj-web) and may omit projectId.
        "client_id": "5c1e3a0f-8d2b-4e6a-9f1c-2b7d4a6e8c10",
        "client_secret": "sbx-openpanel-secret-5b2e",
        "project_id": "proj-web",
        "read_client_id": "9a4f2c7e-1b3d-4c5e-8f6a-0d2e4b6c8a19",
        "read_client_secret": "sbx-openpanel-read-secret-71d4",
    },
    "peer5": {"token": "sbx-peer5-token-31d8"},
    "sealmetrics": {"api_key": "sm_sbx_api_key_c4d2", "site_id": "demo-site"},
}


def connection_env(base_url: str) -> dict[str, str]:
    """AIRFLOW_CONN_* values (JSON form) so hooks using the default conn ids talk to the sandbox."""
    base = base_url.rstrip("/")
    c = CREDENTIALS
    conns: dict[str, dict[str, object]] = {
        "BROWSEE": {
            "conn_type": "browsee",
            "host": base,
            "login": c["browsee"]["api_key"],
            "password": c["browsee"]["secret_key"],
        },
        "BRAZE": {"conn_type": "braze", "host": base, "password": c["braze"]["api_key"]},
        "OPENPANEL": {
            "conn_type": "openpanel",
            "host": base,
            "login": c["openpanel"]["client_id"],
            "password": c["openpanel"]["client_secret"],
            "extra": {"project_id": c["openpanel"]["project_id"]},
        },
        "PEER5": {"conn_type": "peer5", "host": base, "password": c["peer5"]["token"]},
        "SEALMETRICS": {
            "conn_type": "sealmetrics",
            "host": base,
            "password": c["sealmetrics"]["api_key"],
            "extra": {"site_id": c["sealmetrics"]["site_id"]},
        },
    }
    return {f"AIRFLOW_CONN_{name}_DEFAULT": json.dumps(value) for name, value in conns.items()}
