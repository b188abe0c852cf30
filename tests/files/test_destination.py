"""The destination pre-flight: a bad destination fails before any API request, naming URL and connection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from airflow_provider_analytics_export.exceptions import DestinationError
from airflow_provider_analytics_export.files.destination import check_destination
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator


def _bucket_keys(conn_id: str, bucket: str) -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).list_keys(bucket) or []


def test_a_missing_bucket_fails_with_the_url_and_the_connection(s3_destination: str) -> None:
    with pytest.raises(DestinationError) as caught:
        check_destination("s3://no-such-bucket/browsee/2024-04-15/sessions.jsonl", s3_destination)
    message = str(caught.value)
    assert "s3://no-such-bucket/browsee/2024-04-15/sessions.jsonl" in message
    assert f"destination_conn_id='{s3_destination}'" in message
    assert "bucket" in message.lower()  # the store's own reason: NoSuchBucket / bucket does not exist


def test_a_writable_bucket_passes_and_keeps_no_probe(s3_destination: str) -> None:
    check_destination("s3://exports/preflight/2024-04-15/sessions.parquet", s3_destination)
    assert [key for key in _bucket_keys(s3_destination, "exports") if key.startswith("preflight/")] == []


def test_wasb_names_the_abfs_url_to_use_instead() -> None:
    with pytest.raises(DestinationError) as caught:
        check_destination("wasb://lake@myaccount.blob.core.windows.net/a/b.jsonl", "azure_lake")
    message = str(caught.value)
    assert "wasb://lake@myaccount.blob.core.windows.net/a/b.jsonl" not in message  # user info dropped
    assert "wasb://myaccount.blob.core.windows.net/a/b.jsonl" in message
    assert "use abfs://<container>/<path>" in message
    assert "airflow-provider-analytics-export[azure]" in message
    assert "destination_conn_id='azure_lake'" in message


def test_a_scheme_whose_provider_is_missing_names_the_extra_to_install() -> None:
    if importlib.util.find_spec("gcsfs"):
        pytest.skip("gcsfs is installed here: gs:// has a filesystem")
    with pytest.raises(DestinationError, match=r"airflow-provider-analytics-export\[gcs\]"):
        check_destination("gs://lake/a/b.jsonl", None)


def test_an_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(DestinationError, match=r"no filesystem for ftpx://; supported here: file://, s3://"):
        check_destination("ftpx://host/a/b.jsonl", None)


def test_a_local_destination_gets_its_folder_and_no_probe_file(tmp_path: Path) -> None:
    folder = tmp_path / "browsee" / "2024-04-15"
    check_destination((folder / "sessions.jsonl").as_uri(), None)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_local_destination_that_cannot_be_written_fails(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the folder should be")
    with pytest.raises(DestinationError, match=r"Cannot write to destination file://.*/taken/x/s\.jsonl"):
        check_destination((tmp_path / "taken" / "x" / "s.jsonl").as_uri(), None)


def test_the_operator_checks_before_its_first_request(s3_destination: str) -> None:
    """pre_execute, which Airflow runs before execute (and before a resumed deferral), runs the check."""
    operator = BrowseeSessionsExportOperator(
        task_id="export",
        destination="s3://no-such-bucket/browsee/sessions.jsonl",
        destination_conn_id=s3_destination,
        start="2024-04-15",
        end="2024-04-16",
    )
    with pytest.raises(DestinationError, match="no-such-bucket"):
        operator.pre_execute({})
