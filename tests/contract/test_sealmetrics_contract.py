"""Every request the Sealmetrics hook sends and every answer the sandbox gives, against the vendor's spec.

The spec is Sealmetrics' own OpenAPI 3.1 document (see README.md here); openapi-core validates
path, query, headers and body of each request and status, headers and body of each response.
A hook and a sandbox that shared one misreading (``site_id``, a missing field, a wrong type)
would pass every other test; here the vendor's document decides.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator

from airflow_provider_analytics_export.exceptions import ApiError, InvalidRequestError
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, export_body
from airflow_provider_analytics_export.operators.sealmetrics import file_writers as into
from analytics_export_sandbox import CREDENTIALS, SandboxServer

SPEC_PATH = Path(__file__).with_name("sealmetrics-openapi-exports.json")
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
SERVER = SPEC["servers"][0]["url"]
DAY = "2025-01-10"
#: What the exports page documents for /exports/stream beyond the spec's application/json.
STREAM_TYPES_FROM_THE_DOCS = {"text/csv; charset=utf-8", "application/json", "application/x-ndjson"}
ERROR_RESPONSE = OAS31Validator({"$ref": "#/components/schemas/ErrorResponse", **SPEC})


@dataclass
class Exchange:
    """One request as the sandbox received it and the response it gave (file bodies not held)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes | None  # None: a streamed file


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@pytest.fixture
def exchanges(sandbox_reset: SandboxServer) -> Iterator[list[Exchange]]:
    seen: list[Exchange] = []

    def observe(api: str, req: Any, resp: Any) -> None:
        if api != "sealmetrics":
            return
        seen.append(
            Exchange(
                req.method,
                req.path,
                {key: values[-1] for key, values in req.query.items()},
                dict(req.headers.items()),
                req.body,
                resp.status,
                dict(resp.headers),
                resp.body if resp.chunks is None else None,
            )
        )

    sandbox_reset.observers.append(observe)
    yield seen
    sandbox_reset.observers.remove(observe)


def spec_request(exchange: Exchange) -> MockRequest:
    return MockRequest(
        SERVER,
        exchange.method,
        exchange.path,
        args=exchange.query,
        headers=exchange.headers,
        data=exchange.body or None,
        content_type=exchange.headers.get("Content-Type", "application/json"),
    )


def operation(exchange: Exchange) -> tuple[str, str]:
    """(method, the spec's path template) of an exchange."""
    for template, operations in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        fixed_sibling = template.endswith("{job_id}") and exchange.path.rsplit("/", 1)[-1] in (
            "estimate",
            "stream",
        )
        if re.match(pattern, exchange.path) and not fixed_sibling and exchange.method.lower() in operations:
            return exchange.method.lower(), template
    raise AssertionError(f"{exchange.method} {exchange.path} is not in the spec")


def check_response(openapi: OpenAPI, exchange: Exchange) -> None:
    """The answer as the spec defines it; where the spec is silent, as the vendor's docs say."""
    method, template = operation(exchange)
    content_type = exchange.response_headers.get("Content-Type", "")
    if exchange.status >= 400:
        # The errors page and the spec's ErrorResponse: every non-2xx uses the envelope.
        ERROR_RESPONSE.validate(json.loads(exchange.response_body or b""))
    if exchange.response_body is None:  # a file: its media type must be one documented for it
        declared = set(SPEC["paths"][template][method]["responses"][str(exchange.status)]["content"])
        if template.endswith("/stream"):
            assert content_type in STREAM_TYPES_FROM_THE_DOCS | declared, content_type
        else:
            assert content_type in declared, content_type
        return
    response = MockResponse(
        exchange.response_body, exchange.status, exchange.response_headers, content_type or "application/json"
    )
    try:
        openapi.validate_response(spec_request(exchange), response)
    except ResponseNotFound:
        # A status this operation does not list (400 for site_id, 409, 413): the envelope, checked above.
        assert exchange.status >= 400, f"{exchange.status} of {method} {template} is not in the spec"


def hook_scenario(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Every operation of the spec, through the hook, including the errors it meets in real use."""
    hook = SealmetricsHook()
    small = export_body("sources", DAY, "2025-01-12", "csv", {"country": "ES", "utm_medium": "cpc"})
    large = export_body("microconversions", DAY, DAY, "json")
    hook.estimate_export(small)
    hook.stream_export(small, into(tmp_path.as_uri() + "/stream.csv", None))
    for media in ("application/json", "application/x-ndjson"):
        sandbox.config.update({"sealmetrics_stream_json_type": media})
        hook.stream_export(
            {**small, "format": "json"}, into(tmp_path.as_uri() + f"/stream-{media[12:]}.json", None)
        )
    with pytest.raises(InvalidRequestError):
        hook.stream_export(large, into(tmp_path.as_uri() + "/too-big.json", None))  # 413
    done = hook.create_export(small)
    hook.download_export(hook.get_export(done["job_id"]), into(tmp_path.as_uri() + "/small.csv", None))
    job = hook.create_export(large)
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.1)
        job = hook.get_export(job["job_id"])
    hook.download_export(job, into(tmp_path.as_uri() + "/large.json", None))
    list(hook.list_exports(include_expired=True))
    with pytest.raises(ApiError):
        hook.get_export("00000000-0000-4000-8000-000000000000")  # 404
    sandbox.config.update({"sealmetrics_max_concurrent": 1, "sealmetrics_job_delay": 1.0})
    running = hook.create_export(large)
    hook.create_export({**large, "date_from": "2025-01-11", "date_to": "2025-01-11"})  # waits out a 429
    hook.cancel_export(running["job_id"])


def test_every_hook_request_and_sandbox_response_matches_the_spec(
    openapi: OpenAPI, exchanges: list[Exchange], sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    sandbox_reset.config.update({"sealmetrics_job_delay": 0.5})
    hook_scenario(sandbox_reset, tmp_path)

    for exchange in exchanges:
        openapi.validate_request(spec_request(exchange))
        check_response(openapi, exchange)
    covered = {operation(exchange) for exchange in exchanges}
    assert covered == {(m, p) for p, ops in SPEC["paths"].items() for m in ops}
    statuses = {exchange.status for exchange in exchanges}
    assert {200, 201, 204, 404, 413, 429} <= statuses


def test_every_sandbox_error_matches_the_spec(
    openapi: OpenAPI, exchanges: list[Exchange], sandbox_reset: SandboxServer
) -> None:
    """Errors a correct hook never provokes: still the shapes the spec and errors page give."""
    url, key = f"{sandbox_reset.url}/api/v1/exports", {"X-API-Key": CREDENTIALS["sealmetrics"]["api_key"]}
    account = {"account_id": "demo-site"}
    body = {"export_type": "pages", "date_from": DAY, "date_to": DAY}
    requests.get(url, params={"site_id": "demo-site"}, headers=key)  # 400
    requests.get(url, params=account, headers={"X-API-Key": "wrong"})  # 401
    requests.get(url, params={"account_id": "nope"}, headers=key)  # 404 account_not_found
    requests.get(url, headers=key)  # 422 missing account_id
    requests.get(f"{url}/not-a-uuid", params=account, headers=key)  # 422 path.job_id
    requests.post(url, params=account, json={**body, "format": "xml"}, headers=key)  # 422 body
    requests.get(f"{url}/download/unknown-token")  # 404
    sandbox_reset.config.update(
        {
            "sealmetrics_max_concurrent": 1,
            "sealmetrics_job_delay": 5.0,
            "sealmetrics_cap_response": "conflict",
        }
    )
    big = {**body, "export_type": "microconversions"}
    requests.post(url, params=account, json=big, headers=key)
    requests.post(url, params=account, json=big, headers=key)  # 409
    sandbox_reset.config.update({"sealmetrics_rate_limit": 1})
    requests.get(url, params=account, headers=key)  # 429 rate_limit_exceeded
    sandbox_reset.config.update({"sealmetrics_rate_limit": 480, "faults": {"rate": 1.0, "kinds": ["503"]}})
    requests.get(url, params=account, headers=key)  # 503 (injected)

    for exchange in exchanges:
        check_response(openapi, exchange)
    assert {400, 401, 404, 409, 422, 429, 503} <= {exchange.status for exchange in exchanges}
    assert all("Retry-After" in e.response_headers for e in exchanges if e.status in (429, 503))
