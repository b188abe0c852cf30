"""Answers a real API can give when something is wrong upstream end in a clear error, never a short file.

A scripted server stands in for each API (over real sockets): not JSON, HTML error
pages, missing fields, a total that changes between pages, a page repeating the
previous one, an empty page before the reported total. Each case must raise one of the
provider's exceptions, naming the API, and leave no file (and no temp object) behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_analytics_export.exceptions import AnalyticsExportError, MalformedResponseError
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
from analytics_export_sandbox import CREDENTIALS
from tests.reliability.conftest import day, run_context
from tests.scripted_server import Reply, ScriptedServer

START, END = day("2024-04-15"), day("2024-04-16")
SECRETS = [
    value
    for fields in CREDENTIALS.values()
    for key, value in fields.items()
    if key not in ("project_id", "account_id")
]
HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def _html(status: int) -> Reply:
    return Reply(status, HTML, {"Content-Type": "text/html"})


def _session(n: int) -> dict[str, Any]:
    return {"sessionId": f"s{n}", "timestamp": int(START.timestamp()) * 1000 + n, "duration": n}


def _browsee(rows: list[int], total: Any) -> Reply:
    data = [_session(n) for n in rows]
    return Reply(body={"status": "success", "exports": {"total": total, "to": len(rows), "data": data}})


def _event(n: int) -> dict[str, Any]:
    created = (START + dt.timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
    return {"id": f"e{n}", "name": "screen_view", "createdAt": created}


def _openpanel(rows: list[int], total: int, page: int, pages: int) -> Reply:
    meta = {"count": len(rows), "totalCount": total, "pages": pages, "current": page}
    return Reply(body={"meta": meta, "data": [_event(n) for n in rows]})


NOT_JSON = [Reply(200, b"this is not json", {"Content-Type": "text/plain"})]
HTML_ERRORS = [_html(502)]
HTML_404 = [_html(404)]

#: api -> case name -> script
SCRIPTS: dict[str, dict[str, list[Reply]]] = {
    "browsee": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "html_404": HTML_404,
        "html_200": [Reply(200, HTML, {"Content-Type": "text/html"})],
        "missing_exports": [Reply(body={"status": "success"})],
        "missing_total": [Reply(body={"status": "success", "exports": {"data": [_session(1)]}})],
        "total_not_a_number": [_browsee([1], "many")],
        "total_changes": [_browsee([1, 2], 5), _browsee([3, 4], 6)],
        "repeated_page": [_browsee([1, 2], 5), _browsee([1, 2], 5)],
        "empty_before_total": [_browsee([1, 2], 5), _browsee([], 5)],
        "fewer_than_total": [_browsee([1, 2], 3), _browsee([2], 3)],
    },
    "openpanel_events": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "html_404": HTML_404,
        "missing_meta": [Reply(body={"data": [_event(1)]})],
        "missing_total": [Reply(body={"meta": {"current": 1, "pages": 1}, "data": [_event(1)]})],
        "total_changes": [_openpanel([1, 2], 5, 1, 3), _openpanel([3, 4], 6, 2, 3)],
        "repeated_page": [_openpanel([1, 2], 5, 1, 3), _openpanel([1, 2], 5, 2, 3)],
        "empty_before_total": [_openpanel([1, 2], 5, 1, 3), _openpanel([], 5, 2, 3)],
        "wrong_page": [_openpanel([1, 2], 5, 1, 3), _openpanel([3, 4], 5, 1, 3)],
    },
    "openpanel_charts": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "missing_series_data": [Reply(body={"series": [{"id": "x", "names": ["screen_view"]}]})],
        "missing_point_date": [
            Reply(body={"series": [{"id": "x", "names": ["screen_view"], "data": [{"count": 3}]}]})
        ],
    },
    "braze": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "html_404": HTML_404,
        "missing_data": [Reply(body={"message": "success"})],
        "not_success": [Reply(body={"message": "Invalid segment", "data": []})],
        "point_missing_time": [Reply(body={"message": "success", "data": [{"sessions": 3}]})],
        "point_outside_window": [
            Reply(body={"message": "success", "data": [{"time": "2023-01-01T00:00:00Z", "sessions": 3}]})
        ],
    },
    "peer5": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "html_404": HTML_404,
        "missing_data": [Reply(body={"error": False})],
        "error_flag": [Reply(body={"error": True, "message": "bad filter"})],
        "row_missing_timestamp": [Reply(body={"data": [{"http": 1}]})],
    },
    # A csv destination with an aligned window passes Peer5's bytes through: they must be CSV.
    "peer5_csv": {
        "not_csv": NOT_JSON,
        "html_200": [Reply(200, HTML, {"Content-Type": "text/html"})],
        "json_error_200": [Reply(body={"error": True, "message": "bad filter"})],
    },
    "sealmetrics": {
        "not_json": NOT_JSON,
        "html_502": HTML_ERRORS,
        "html_404": HTML_404,
        "estimate_missing_fields": [Reply(body={}), Reply(200, b"", {"Content-Type": "text/csv"})],
    },
}


def _operator(api: str, conn_id: str, destination: str) -> Any:
    if api == "browsee":
        return BrowseeSessionsExportOperator(
            task_id="t", destination=destination, browsee_conn_id=conn_id, page_size=2
        )
    if api == "openpanel_events":
        return OpenPanelEventsExportOperator(
            task_id="t", destination=destination, openpanel_conn_id=conn_id, page_size=2, max_concurrency=1
        )
    if api == "openpanel_charts":
        return OpenPanelChartsExportOperator(
            task_id="t", destination=destination, openpanel_conn_id=conn_id, events=[{"name": "screen_view"}]
        )
    if api == "braze":
        return BrazeSessionsExportOperator(task_id="t", destination=destination, braze_conn_id=conn_id)
    if api.startswith("peer5"):
        return Peer5ExportOperator(
            task_id="t", destination=destination, peer5_conn_id=conn_id, metrics=["http"], interval="1d"
        )
    return SealmetricsExportOperator(
        task_id="t",
        destination=destination,
        export_type="pages",
        sealmetrics_conn_id=conn_id,
        deferrable=False,
    )


CONN_TYPES = {"openpanel_events": "openpanel", "openpanel_charts": "openpanel", "peer5_csv": "peer5"}

CASES = [pytest.param(api, case, id=f"{api}-{case}") for api, cases in SCRIPTS.items() for case in cases]


@pytest.mark.parametrize(("api", "case"), CASES)
def test_malformed_response_is_a_clear_error_and_no_file(
    api: str, case: str, scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    scripted.queue(*SCRIPTS[api][case])
    conn_id = api_conn(CONN_TYPES.get(api, api), scripted.url, max_attempts=2, timeout=5)
    peer5_day = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    window = (
        (peer5_day - dt.timedelta(days=2), peer5_day - dt.timedelta(days=1))
        if api == "peer5"
        else (START, END)
    )
    destination = tmp_path / "out" / ("export.jsonl" if api == "peer5" else "export.csv")
    destination.parent.mkdir()

    with pytest.raises(AnalyticsExportError) as info:
        _operator(api, conn_id, destination.as_uri()).execute(run_context(*window))

    api_name = {"openpanel_events": "OpenPanel", "openpanel_charts": "OpenPanel", "peer5_csv": "Peer5"}.get(
        api, api.capitalize()
    )
    assert api_name.lower() in str(info.value).lower(), str(info.value)
    assert not [secret for secret in SECRETS if secret in str(info.value)]
    assert list(destination.parent.iterdir()) == []
    assert scripted.requests, "the scripted server was never asked"


@pytest.mark.parametrize("total", ["many", "3", None, 2.5], ids=["word", "digits", "null", "fraction"])
def test_browsee_total_not_an_integer_names_api_endpoint_and_field(
    total: Any, scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    """``exports.total`` drives paging and the row check: anything but an integer is the API's fault."""
    scripted.queue(_browsee([1], total))
    conn_id = api_conn("browsee", scripted.url, max_attempts=2)
    destination = tmp_path / "b.csv"
    with pytest.raises(MalformedResponseError) as info:
        _operator("browsee", conn_id, destination.as_uri()).execute(run_context(START, END))
    message = str(info.value)
    assert "Browsee POST /api/v1/export/sessions" in message and "'exports.total'" in message, message
    assert len(scripted.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_html_error_page_is_described_not_dumped(
    scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    """The error names status and endpoint and says 'HTML error page' instead of pasting the page."""
    scripted.queue(*HTML_404)
    conn_id = api_conn("braze", scripted.url, max_attempts=1)
    with pytest.raises(AnalyticsExportError) as info:
        _operator("braze", conn_id, (tmp_path / "b.csv").as_uri()).execute(run_context(START, END))
    message = str(info.value)
    assert "404" in message and "/sessions/data_series" in message and "HTML error page" in message
    assert "<html" not in message.lower()


def test_download_of_completed_job_without_url_is_a_clear_error(
    scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    job = {"job_id": "j1", "status": "completed", "format": "csv", "actual_rows": 3}
    scripted.queue(Reply(body=job))
    conn_id = api_conn("sealmetrics", scripted.url, max_attempts=1)
    op = SealmetricsDownloadExportOperator(
        task_id="d", job_id="j1", destination=(tmp_path / "m.csv").as_uri(), sealmetrics_conn_id=conn_id
    )
    with pytest.raises(AnalyticsExportError):
        op.execute(run_context(START, END))
    assert list(tmp_path.iterdir()) == []


def test_download_shorter_than_actual_rows_is_refused(
    scripted: ScriptedServer, api_conn: Callable[..., str], tmp_path: Path
) -> None:
    """A file with fewer records than the job reports is not committed (a silently short file)."""
    download_url = f"{scripted.url}/api/v1/exports/download/tok123"
    job = {
        "job_id": "j1",
        "status": "completed",
        "format": "csv",
        "actual_rows": 3,
        "download_url": download_url,
    }
    scripted.queue(Reply(body=job), Reply(200, b"page,views\n/a,1\n/b,2\n", {"Content-Type": "text/csv"}))
    conn_id = api_conn("sealmetrics", scripted.url, max_attempts=1)
    op = SealmetricsDownloadExportOperator(
        task_id="d", job_id="j1", destination=(tmp_path / "m.csv").as_uri(), sealmetrics_conn_id=conn_id
    )
    with pytest.raises(AnalyticsExportError) as info:
        op.execute(run_context(START, END))
    assert "actual_rows=3" in str(info.value)
    assert list(tmp_path.iterdir()) == []
