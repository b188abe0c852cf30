"""A destination that fails surfaces as itself: never an API error, never a second export.

Every operator writes into ``failingfs://``, an in-memory fsspec filesystem that fails on
purpose: at open (a ValueError, as an unsupported scheme gives), mid-write (a requests
ConnectionError, as an object store spoken to over requests gives) or at commit (a
PermissionError). The task must fail with that very exception object, and the sandbox's
request log must show no request the same export without the failure did not make: a retried
stream or download would show it twice. Sealmetrics opens its destination while the response
streams in, which is where an API retry could get it wrong.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import fsspec
import pytest
import requests
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from airflow_provider_analytics_export.hooks.sealmetrics import SealmetricsHook
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from analytics_export_sandbox import SandboxServer
from tests.reliability.conftest import day, run_context

PROTOCOL = "failingfs"
#: universal_pathlib warns about every protocol it has no class of its own for.
pytestmark = pytest.mark.filterwarnings(f"ignore:UPath '{PROTOCOL}' filesystem:UserWarning")
#: Bytes a file takes before its write fails: past the first chunk's start, inside the file.
WRITE_FAILS_AFTER = 16
#: Sealmetrics requests that make an export; job polls and listings may repeat by design.
SEALMETRICS_EXPORTS = {
    ("POST", "/api/v1/exports"),
    ("POST", "/api/v1/exports/stream"),
    ("GET", "/api/v1/exports/download/<token>"),
}


class FailingFileSystem(MemoryFileSystem):
    """memory:// with its own store that fails where :attr:`fail` says, recording what it raised."""

    protocol = (PROTOCOL,)
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    fail: ClassVar[str | None] = None
    raised: ClassVar[list[BaseException]] = []

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(str(path).removeprefix(f"{PROTOCOL}://"))

    @classmethod
    def failure(cls, error: BaseException) -> BaseException:
        cls.raised.append(error)
        return error

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" not in mode:
            return super()._open(path, mode, **kwargs)
        if self.fail == "open":
            raise self.failure(ValueError(f"Unsupported filesystem for {path!r} (test destination)"))
        file = _FailingFile(self, self._strip_protocol(path))
        file.commit()  # in the store from its open on, as memory:// does
        return file

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        if self.fail == "commit":
            raise self.failure(PermissionError(f"{path2}: write access denied (test destination)"))
        super().cp_file(path1, path2, **kwargs)


class _FailingFile(MemoryFile):
    def write(self, data: Any) -> int:
        if FailingFileSystem.fail == "write" and self.tell() + len(data) > WRITE_FAILS_AFTER:
            raise FailingFileSystem.failure(
                requests.exceptions.ConnectionError("object store connection reset (test destination)")
            )
        return super().write(data)


@pytest.fixture
def failing_fs() -> Iterator[type[FailingFileSystem]]:
    from airflow.sdk.io.store import attach

    fsspec.register_implementation(PROTOCOL, FailingFileSystem, clobber=True)
    attach(PROTOCOL, fs=FailingFileSystem())
    yield FailingFileSystem
    FailingFileSystem.store.clear()
    FailingFileSystem.fail = None
    FailingFileSystem.raised.clear()


Run = Callable[[str], Any]
"""destination -> the operator's result (or its exception)."""


def browsee(destination: str) -> Any:
    op = BrowseeSessionsExportOperator(task_id="t", destination=destination, page_size=100)
    return op.execute(run_context(day("2024-04-15"), day("2024-04-15") + dt.timedelta(hours=2)))


def braze(destination: str) -> Any:
    op = BrazeSessionsExportOperator(task_id="t", destination=destination, unit="day")
    return op.execute(run_context(day("2024-01-01"), day("2024-01-08")))


def openpanel_events(destination: str) -> Any:
    op = OpenPanelEventsExportOperator(task_id="t", destination=destination, page_size=1000)
    return op.execute(run_context(day("2024-04-15"), day("2024-04-16")))


def openpanel_charts(destination: str) -> Any:
    op = OpenPanelChartsExportOperator(
        task_id="t", destination=destination, events=[{"name": "screen_view"}], interval="day"
    )
    return op.execute(run_context(day("2024-01-01"), day("2024-01-08")))


def _peer5(destination: str) -> Any:
    start = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= dt.timedelta(days=2)
    op = Peer5ExportOperator(task_id="t", destination=destination, metrics=["http", "p2p"], interval="1h")
    return op.execute(run_context(start, start + dt.timedelta(hours=6)))


def sealmetrics(export_type: str, days: int) -> Run:
    def run(destination: str) -> Any:
        op = SealmetricsExportOperator(
            task_id="t",
            export_type=export_type,
            destination=destination,
            deferrable=False,
            poll_interval=0.1,
            timeout=60,
        )
        return op.execute(run_context(day("2024-04-10"), day("2024-04-10") + dt.timedelta(days=days)))

    return run


#: The finished job the download operator fetches, made by :func:`fresh`.
JOB: dict[str, str] = {}


def sealmetrics_download(destination: str) -> Any:
    op = SealmetricsDownloadExportOperator(task_id="t", job_id=JOB["id"], destination=destination)
    return op.execute(run_context(day("2024-04-10"), day("2024-04-11")))


#: Operator -> (its run, the destination's suffix).
OPERATORS: dict[str, tuple[Run, str]] = {
    "browsee": (browsee, "jsonl"),
    "braze": (braze, "csv"),
    "openpanel_events": (openpanel_events, "jsonl"),
    "openpanel_charts": (openpanel_charts, "csv"),
    "peer5_rows": (_peer5, "jsonl"),
    "peer5_csv": (_peer5, "csv"),
    "sealmetrics_stream": (sealmetrics("sources", 1), "csv"),
    "sealmetrics_job": (sealmetrics("pages", 5), "csv"),
    "sealmetrics_download": (sealmetrics_download, "csv"),
}


def export_requests(sandbox: SandboxServer) -> Counter[tuple[str, ...]]:
    """How often each request that makes (part of) an export was sent.

    A streamed answer is logged once its last byte is out, which may be just after the client
    has it all: the log is read until it stays the same for a moment.
    """
    seen, counts = None, _export_requests(sandbox)
    while counts != seen:
        time.sleep(0.3)
        seen, counts = counts, _export_requests(sandbox)
    return counts


def _export_requests(sandbox: SandboxServer) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for entry in list(sandbox.requests_log):
        key = (entry["method"], entry["path"])
        if entry["api"] != "sealmetrics":
            counts[(*key, entry["query"])] += 1
        elif key in SEALMETRICS_EXPORTS:
            counts[key] += 1
    return counts


def fresh(sandbox: SandboxServer, name: str) -> None:
    """Reset the sandbox; the download case gets its finished job first (outside the count)."""
    sandbox.reset()
    sandbox.config.update({"sealmetrics_job_delay": 0.2})
    if name == "sealmetrics_download":
        hook = SealmetricsHook()
        body = {"export_type": "pages", "format": "csv", "date_from": "2024-04-10", "date_to": "2024-04-14"}
        JOB["id"] = str(hook.create_export(body)["job_id"])
        hook.wait_for_export(JOB["id"], poll_interval=0.1, timeout=30)
        with sandbox.lock:
            sandbox.requests_log.clear()


@pytest.mark.parametrize("fail", ["open", "write", "commit"])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_a_failing_destination_surfaces_as_itself_and_exports_once(
    name: str, fail: str, sandbox_reset: SandboxServer, failing_fs: type[FailingFileSystem]
) -> None:
    run, suffix = OPERATORS[name]
    destination = f"{PROTOCOL}://exports/{name}.{suffix}"

    fresh(sandbox_reset, name)
    assert run(destination)["rows"] > 0
    working = export_requests(sandbox_reset)
    assert sum(working.values()) >= 1

    fresh(sandbox_reset, name)
    failing_fs.store.clear()
    failing_fs.fail = fail
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the very object the destination raised
        run(destination)
    failing = export_requests(sandbox_reset)

    assert failing_fs.raised and raised.value is failing_fs.raised[-1], raised.value
    assert not failing - working, f"requests the working export did not need: {failing - working}"
    if fail != "open" or name.startswith("sealmetrics"):
        assert failing, "the failure must come after the export was requested"
    assert not any(key.endswith(f"{name}.{suffix}") for key in failing_fs.store)
