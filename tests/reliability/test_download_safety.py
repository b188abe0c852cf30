"""Sealmetrics download links are followed only to the API's own host, over https (http: loopback only).

The link carries a bearer token and no API key; sending it elsewhere would leak the file
and the token. The file name the server suggests (Content-Disposition) never decides
where the file goes: only ``destination`` does. A destination that fails is its own error,
never taken for a bad answer and retried.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_analytics_export.exceptions import AnalyticsExportError, ApiError, DestinationError
from airflow_provider_analytics_export.files.counters import RecordCounter
from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook, export_body
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from tests.reliability.conftest import day, run_context
from tests.scripted_server import Reply, ScriptedServer

if TYPE_CHECKING:
    from analytics_export_sandbox import SandboxServer

TOKEN = "tok_" + "s3cr3t" * 4
PATH = f"/api/v1/exports/download/{TOKEN}"

REFUSED = {
    "other host": ("https://api.example.com", f"https://evil.example.net{PATH}"),
    "suffix host": ("https://api.example.com", f"https://api.example.com.evil.net{PATH}"),
    "userinfo trick": ("https://api.example.com", f"https://api.example.com@evil.net{PATH}"),
    "other port": ("https://api.example.com", f"https://api.example.com:8443{PATH}"),
    "plain http": ("https://api.example.com", f"http://api.example.com{PATH}"),
    "http to non-loopback": ("http://10.1.2.3:8080", f"http://10.1.2.3:8080{PATH}"),
    "ftp": ("https://api.example.com", f"ftp://api.example.com{PATH}"),
    "protocol-relative": ("https://api.example.com", f"//evil.net{PATH}"),
    "loopback other port": ("http://127.0.0.1:8080", f"http://127.0.0.1:9090{PATH}"),
    "loopback name vs address": ("http://127.0.0.1:8080", f"http://localhost:8080{PATH}"),
    "not a download path": ("https://api.example.com", f"https://api.example.com/api/v1/exports/{TOKEN}"),
}
ALLOWED = {
    "https same host": ("https://api.example.com", f"https://api.example.com{PATH}"),
    "https explicit default port": ("https://api.example.com", f"https://api.example.com:443{PATH}"),
    "relative link": ("https://api.example.com", PATH),
    "http loopback": ("http://127.0.0.1:8080", f"http://127.0.0.1:8080{PATH}"),
    "http localhost": ("http://localhost:8080", f"http://localhost:8080{PATH}"),
    "http ipv6 loopback": ("http://[::1]:8080", f"http://[::1]:8080{PATH}"),
}


@pytest.mark.parametrize(("host", "url"), list(REFUSED.values()), ids=list(REFUSED))
def test_download_url_refused(host: str, url: str, api_conn: Callable[..., str]) -> None:
    hook = SealmetricsHook(api_conn("sealmetrics", host))
    with pytest.raises(AnalyticsExportError) as info:
        hook.checked_download_url(url)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(("host", "url"), list(ALLOWED.values()), ids=list(ALLOWED))
def test_download_url_allowed(host: str, url: str, api_conn: Callable[..., str]) -> None:
    hook = SealmetricsHook(api_conn("sealmetrics", host))
    assert hook.checked_download_url(url).endswith(PATH)


def _completed_job(download_url: str, rows: int = 2) -> dict[str, object]:
    return {
        "job_id": "j1",
        "status": "completed",
        "format": "csv",
        "actual_rows": rows,
        "download_url": download_url,
    }


def test_download_to_another_host_sends_nothing_there(
    scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    """The API (scripted) hands out a link to a second server: no request reaches it, no file is written."""
    other = ScriptedServer()
    try:
        other.queue(Reply(200, b"page,views\n/a,1\n/b,2\n", {"Content-Type": "text/csv"}))
        scripted.queue(Reply(body=_completed_job(f"{other.url.replace('127.0.0.1', 'localhost')}{PATH}")))
        op = SealmetricsDownloadExportOperator(
            task_id="d",
            job_id="j1",
            destination=(tmp_path / "m.csv").as_uri(),
            sealmetrics_conn_id=api_conn("sealmetrics", scripted.url, max_attempts=1),
        )
        with pytest.raises(AnalyticsExportError, match="Refusing to download from"):
            op.execute(run_context(day("2024-04-14"), day("2024-04-15")))
        assert other.requests == []
        assert list(tmp_path.iterdir()) == []
    finally:
        other.close()


@pytest.mark.parametrize(
    "suggested",
    ["../../{name}", "/tmp/{name}", "..\\\\..\\\\{name}", "{name}"],
    ids=["parent-dirs", "absolute", "windows-parent", "plain"],
)
def test_content_disposition_filename_never_builds_a_path(
    suggested: str,
    scripted: ScriptedServer,
    api_conn: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"reliability-{uuid.uuid4().hex}.csv"
    work = tmp_path / "a" / "b" / "cwd"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    filename = suggested.format(name=name)
    scripted.queue(
        Reply(body=_completed_job(f"{scripted.url}{PATH}")),
        Reply(
            200,
            b"page,views\n/a,1\n/b,2\n",
            {"Content-Type": "text/csv", "Content-Disposition": f'attachment; filename="{filename}"'},
        ),
    )
    destination = tmp_path / "exports" / "pages.csv"
    op = SealmetricsDownloadExportOperator(
        task_id="d",
        job_id="j1",
        destination=destination.as_uri(),
        sealmetrics_conn_id=api_conn("sealmetrics", scripted.url, max_attempts=1),
    )

    result = op.execute(run_context(day("2024-04-14"), day("2024-04-15")))

    assert destination.read_bytes() == b"page,views\n/a,1\n/b,2\n"
    assert result["uri"].endswith("/exports/pages.csv") and result["rows"] == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [destination]
    assert not Path("/tmp", name).exists()


# -- a destination that fails is the destination's error, after one request -------------------
class BrokenSink:
    """A destination that fails while opening, mid-write or at commit, with the error a store gives.

    ValueError and requests' ConnectionError are what the transport reads as an answer cut
    short (and retries); from a destination they must surface as themselves instead.
    """

    def __init__(self, fails_at: str) -> None:
        self.fails_at = fails_at

    def __enter__(self) -> BrokenSink:
        if self.fails_at == "enter":
            raise ValueError("Unsupported filesystem: 'wasb'")
        return self

    def copy(self, chunks: Iterable[bytes], record_format: str) -> int:
        counter = RecordCounter(record_format)
        for chunk in chunks:
            if self.fails_at == "write":
                raise requests.ConnectionError("the object store closed the upload")
            counter.feed(chunk)
        counter.finish()
        return counter.rows

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.fails_at == "commit":
            raise ValueError("commit refused: bucket is read-only")


FAILURES = {
    "enter": (ValueError, "Unsupported filesystem"),
    "write": (requests.ConnectionError, "closed the upload"),
    "commit": (ValueError, "commit refused"),
}


@pytest.mark.parametrize("fails_at", list(FAILURES))
@pytest.mark.parametrize("route", ["stream", "download"])
def test_a_failing_destination_is_raised_as_itself_after_one_request(
    clean_sandbox: SandboxServer, route: str, fails_at: str
) -> None:
    hook = SealmetricsHook(max_attempts=4)
    body = export_body("sources", "2025-01-10", "2025-01-10")
    error, text = FAILURES[fails_at]
    with pytest.raises(error, match=text) as info:
        if route == "stream":
            hook.stream_export(body, lambda layout: BrokenSink(fails_at))
        else:
            hook.download_export(hook.create_export(body), lambda layout: BrokenSink(fails_at))
    assert not isinstance(info.value, ApiError)
    assert file_requests(clean_sandbox) == 1


def file_requests(sandbox: SandboxServer, wait: float = 5.0) -> int:
    """Stream and download requests, waiting up to ``wait`` s for the first: a file answer is
    logged once its last byte left (or the client went away)."""

    def count() -> int:
        return sum(e["path"].endswith(("/stream", "/download/<token>")) for e in sandbox.requests_log)

    deadline = time.monotonic() + wait
    while count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


@pytest.mark.parametrize("how", ["task runner", "execute alone"])
def test_an_unusable_destination_fails_before_the_export_is_made(
    clean_sandbox: SandboxServer, tmp_path: Path, how: str
) -> None:
    """No filesystem for the scheme: the task fails on that before any request to the API.

    In the task runner's order the pre-flight (``pre_execute``) says so; ``execute`` called alone
    fails as early, on the storage it resolves before the stream request (on Airflow 3.0 too,
    whose ObjectStoragePath resolves its filesystem lazily).
    """
    op = SealmetricsExportOperator(
        task_id="s", export_type="sources", destination="nosuchfs://bucket/sources.csv"
    )
    context = run_context(day("2025-01-10"), day("2025-01-11"))
    if how == "task runner":
        with pytest.raises(DestinationError, match=r"no filesystem for nosuchfs://; supported here"):
            op.pre_execute(context)
            op.execute(context)
    else:
        with pytest.raises(ValueError, match="nosuchfs"):
            op.execute(context)
    assert file_requests(clean_sandbox, wait=1.0) == 0
    assert clean_sandbox.requests_log == []
