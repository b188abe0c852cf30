"""Sealmetrics export files: which media types a format arrives as, and the checked copy into a sink.

``/exports/stream`` answers ``text/csv; charset=utf-8``, ``application/json`` or
``application/x-ndjson``; a job's download is the file in its format. A body that is not such
a file (an empty 200, an HTML page, another charset) is refused before anything is committed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_analytics_export.exceptions import MalformedResponseError
from airflow_provider_analytics_export.progress import ExportProgress
from airflow_provider_analytics_export.transport.downloads import Sink, copy_checked
from airflow_provider_analytics_export.transport.responses import file_chunks

if TYPE_CHECKING:
    import logging

    import requests

API = "Sealmetrics"
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
#: Media types each format may arrive as (``/exports/stream`` also answers ndjson for json), the
#: record layout that type means, how the body must start, and that start in words.
FILE_KINDS: dict[tuple[str, str], tuple[str, re.Pattern[bytes], str]] = {
    ("csv", "text/csv"): ("csv", re.compile(rb"[^\r\n]+"), "a CSV header line"),
    ("json", "application/json"): ("json", re.compile(rb"\s*\["), "a JSON array"),
    ("json", "application/x-ndjson"): ("ndjson", re.compile(rb"\s*(\{|$)"), "a JSON object per line"),
}
DOCUMENTED_TYPE = {"csv": "text/csv", "json": "application/json"}


def accepted_types(fmt: str) -> str:
    """The ``Accept`` header for a file of ``fmt``: every media type it may arrive as."""
    return ", ".join(media for (kind, media) in FILE_KINDS if kind == fmt)


def file_copier(
    log: Any,
    open_sink: Callable[[str], Sink],
    fmt: str,
    job: Mapping[str, Any] | None,
    request: tuple[str, str, str],
) -> Callable[[requests.Response], Sink]:
    """A ``parse`` callback that copies the body into a fresh sink (so a retry restarts).

    ``request`` is (method, endpoint, label for progress logs). Given a ``job``, its
    ``actual_rows`` must match the file's record count. A body whose media type is not one
    documented for ``fmt``, or that does not start like such a file, or whose records are
    malformed, is refused before anything is committed.
    """
    method, endpoint, label = request
    claimed = None
    if job is not None and job.get("actual_rows") is not None:
        rows = int(job["actual_rows"])
        claimed = (rows, f"Sealmetrics export {job.get('job_id')} reports actual_rows={rows}")

    def copy(response: requests.Response) -> Sink:
        content_type, layout, start, expected = file_kind(response, method, endpoint, fmt)
        chunks = file_chunks(
            response,
            API,
            method,
            endpoint,
            content_type=content_type,
            start=start,
            expected=expected,
            chunk_size=DOWNLOAD_CHUNK_BYTES,
        )
        return copy_checked(
            chunks,
            open_sink,
            layout,
            progress=ExportProgress(cast("logging.Logger", log), label, unit="bytes"),
            where=f"Sealmetrics {method} {endpoint}",
            claimed=claimed,
            total=int(response.headers.get("Content-Length") or 0) or None,
        )

    return copy


def file_kind(
    response: requests.Response, method: str, endpoint: str, fmt: str
) -> tuple[str, str, re.Pattern[bytes], str]:
    """(media type, record layout, start pattern, its words) for the answer's Content-Type.

    Unknown types fall through to ``file_chunks``' own check against the documented type;
    a charset other than UTF-8 is refused (the file is stored as sent).
    """
    header = response.headers.get("Content-Type", "")
    media, _, parameters = header.partition(";")
    media = media.strip().lower()
    charset = (
        parameters.strip().lower().removeprefix("charset=").strip('"')
        if "charset=" in parameters.lower()
        else ""
    )
    if charset and charset not in ("utf-8", "utf8"):
        raise MalformedResponseError(
            API, method, endpoint, response.status_code, f"response charset is {charset!r}, not utf-8"
        )
    known = FILE_KINDS.get((fmt, media))
    if known is None:
        return (DOCUMENTED_TYPE[fmt], *FILE_KINDS[(fmt, DOCUMENTED_TYPE[fmt])])
    return (media, *known)
