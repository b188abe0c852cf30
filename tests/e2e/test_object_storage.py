"""Exports into real object storage with real Airflow: a local S3 server (moto) and Azurite (Azure Blob).

The DAG (object_storage_dags/) is the README's "Object storage" example; a destination whose
bucket or container does not exist fails the task before the API sees one request.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.airflow_runner import AirflowRunner
from tests.conftest import _free_port, _wait_for_port
from tests.e2e.conftest import RecordingRunner

DAGS = Path(__file__).resolve().parent / "object_storage_dags"
AZURITE = (
    Path(__file__).resolve().parents[2] / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
)
#: Azurite's documented development account (public, the same in every Azurite).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DAY_AFTER = "2024-04-16"  # exports 2024-04-15: 480 Browsee sessions in the sandbox


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Blob service on loopback; yields its connection string. ``make azurite`` installs it."""
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE}: run `make azurite` (npm, project-local).")
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--silent",
            "--skipApiVersionCheck",
        ]
        + ["--location", str(tmp_path_factory.mktemp("azurite"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port)
    connection_string = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(connection_string).create_container("exports")
    yield connection_string
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # Azurite shuts down gracefully; a loaded machine can take longer
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def runner(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, s3_destination: str
) -> AirflowRunner:
    """Airflow whose connections reach the sandbox and moto (``aws_moto``)."""
    runner = RecordingRunner(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=DAGS,
        sandbox_url=sandbox.url,
        export_root="file:///unused",
    )
    runner.migrate()
    return runner


def adls_connection(connection_string: str) -> str:
    """The ``azurite`` connection as JSON: Airflow's adls type with a connection string."""
    return json.dumps({"conn_type": "adls", "extra": {"connection_string": connection_string}})


def run(runner: AirflowRunner, root: str, conn_id: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.update(AIRFLOW_VAR_STORAGE_ROOT=root, AIRFLOW_VAR_STORAGE_CONN_ID=conn_id)
    return runner.dags_test("object_storage_export", DAY_AFTER, env=env, check=False)


def assert_no_api_request_and_failed(result: subprocess.CompletedProcess[str], sandbox: SandboxServer) -> str:
    output = result.stdout + result.stderr
    assert "new_state=failed" in output or "state=failed" in output, output[-3000:]
    assert sandbox.requests_log == []
    return output


def test_s3_with_destination_conn_id(runner, sandbox_reset, s3_destination):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    result = run(runner, "s3://exports/e2e", s3_destination)
    assert "new_state=success" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    body = S3Hook(aws_conn_id=s3_destination).get_key("e2e/browsee/2024-04-15/sessions.parquet", "exports")
    assert pq.read_table(io.BytesIO(body.get()["Body"].read())).num_rows == 480


def test_s3_missing_bucket_fails_before_any_request(runner, sandbox_reset, s3_destination):
    output = assert_no_api_request_and_failed(
        run(runner, "s3://no-such-bucket/e2e", s3_destination), sandbox_reset
    )
    assert "DestinationError" in output
    assert "s3://no-such-bucket/e2e/browsee/2024-04-15/sessions.parquet" in output
    assert "destination_conn_id='aws_moto'" in output


def test_azure_abfs(runner, sandbox_reset, azurite):
    from azure.storage.blob import BlobServiceClient

    result = run(runner, "abfs://exports/e2e", "azurite", AIRFLOW_CONN_AZURITE=adls_connection(azurite))
    assert "new_state=success" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    blob = BlobServiceClient.from_connection_string(azurite).get_blob_client(
        "exports", "e2e/browsee/2024-04-15/sessions.parquet"
    )
    assert pq.read_table(io.BytesIO(blob.download_blob().readall())).num_rows == 480


def test_azure_missing_container_fails_before_any_request(runner, sandbox_reset, azurite):
    result = run(runner, "abfs://missing/e2e", "azurite", AIRFLOW_CONN_AZURITE=adls_connection(azurite))
    output = assert_no_api_request_and_failed(result, sandbox_reset)
    assert "abfs://missing/e2e/browsee/2024-04-15/sessions.parquet (destination_conn_id='azurite')" in output
    assert AZURITE_KEY not in output
