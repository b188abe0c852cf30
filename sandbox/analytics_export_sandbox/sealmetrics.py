"""Fake Sealmetrics exports API: sync/background jobs, download links with expiry, streaming, caps."""

from __future__ import annotations

import copy
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .data import (
    BACKGROUND_THRESHOLD,
    SEALMETRICS_EXPORT_TYPES,
    SEALMETRICS_FILTER_KEYS,
    SEALMETRICS_SITES,
    human_size,
    sealmetrics_file_chunks,
    sealmetrics_file_size,
    sealmetrics_row_count,
)
from .server import ErrorResponse, Request, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

PREFIX = "/api/v1/exports"
FORMATS = ("csv", "json")
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}
FAIL_MESSAGE = "Export generation failed: analytics query timed out (sandbox-injected failure)"
RUNNING = ("pending", "estimating", "generating")


@dataclass
class Job:
    """One export job; its status is derived from elapsed time on every read (no worker threads)."""

    id: int
    job_id: str
    params: dict[str, Any]
    fmt: str
    rows: int
    background: bool
    fail: bool
    created: float
    delay: float
    token: str
    base_url: str
    data_config: SandboxConfig
    size: int | None = None

    def phase(self, now: float, ttl: float) -> tuple[str, int]:
        """(status, progress_percent) at ``now``."""
        el = now - self.created
        d = self.delay if self.background else 0.0
        if self.fail and (not self.background or el >= 0.6 * d):
            return "failed", 0 if not self.background else int(100 * 0.3 / 0.7)
        if self.background and el < d:
            if el < 0.15 * d:
                return "pending", 0
            if el < 0.3 * d:
                return "estimating", 0
            return "generating", min(99, int(100 * (el - 0.3 * d) / (0.7 * d)))
        if now >= self.created + d + ttl:
            return "expired", 100
        return "completed", 100


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_state() -> dict[str, Any]:
    return {"jobs": {}, "tokens": {}, "next_id": 1}


def _detail(loc: list[Any], msg: str, typ: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": typ}


def _auth(req: Request) -> None:
    if req.headers.get("X-API-Key") != CREDENTIALS["sealmetrics"]["api_key"]:
        raise ErrorResponse(401, {"detail": "Invalid API key"})


def _site(req: Request) -> str:
    site = req.q("site_id")
    if not site:
        raise ErrorResponse(
            422, {"detail": [_detail(["query", "site_id"], "field required", "value_error.missing")]}
        )
    if site not in SEALMETRICS_SITES:
        raise ErrorResponse(404, {"detail": "Site not found"})
    return site


def _parse_date(errors: list[dict[str, Any]], body: dict[str, Any], name: str) -> date | None:
    value = body.get(name)
    if value is None:
        errors.append(_detail(["body", name], "field required", "value_error.missing"))
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    errors.append(_detail(["body", name], "invalid date format", "value_error.date"))
    return None


def validate_body(req: Request, site: str, config: SandboxConfig) -> tuple[dict[str, Any], str, int]:
    """FastAPI-style validation of an export request; returns (params, format, row count)."""
    try:
        body = req.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ErrorResponse(
            422, {"detail": [_detail(["body"], "value is not a valid dict", "type_error.dict")]}
        )
    errors: list[dict[str, Any]] = []
    export_type = body.get("export_type")
    if export_type is None:
        errors.append(_detail(["body", "export_type"], "field required", "value_error.missing"))
    elif export_type not in SEALMETRICS_EXPORT_TYPES:
        permitted = ", ".join(f"'{t}'" for t in SEALMETRICS_EXPORT_TYPES)
        errors.append(
            _detail(
                ["body", "export_type"],
                f"value is not a valid enumeration member; permitted: {permitted}",
                "type_error.enum",
            )
        )
    fmt = body.get("format", "csv")
    if fmt not in FORMATS:
        errors.append(
            _detail(
                ["body", "format"],
                "value is not a valid enumeration member; permitted: 'csv', 'json'",
                "type_error.enum",
            )
        )
    d_from = _parse_date(errors, body, "date_from")
    d_to = _parse_date(errors, body, "date_to")
    filters = body.get("filters")
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        errors.append(_detail(["body", "filters"], "value is not a valid dict", "type_error.dict"))
        filters = {}
    for key, value in filters.items():
        if key not in SEALMETRICS_FILTER_KEYS:
            errors.append(
                _detail(["body", "filters", key], "extra fields not permitted", "value_error.extra")
            )
        elif not isinstance(value, str):
            errors.append(_detail(["body", "filters", key], "str type expected", "type_error.str"))
    if d_from is not None and d_to is not None and d_from > d_to:
        errors.append(_detail(["body", "date_to"], "date_to must be on or after date_from", "value_error"))
    if errors:
        raise ErrorResponse(422, {"detail": errors})
    assert d_from is not None and d_to is not None
    params = {
        "site_id": site,
        "export_type": export_type,
        "date_from": d_from.isoformat(),
        "date_to": d_to.isoformat(),
        "filters": filters,
    }
    rows = sealmetrics_row_count(config, site, export_type, d_from, d_to, filters)
    max_rows = config.sealmetrics_max_rows
    if max_rows is not None and rows > max_rows:
        raise ErrorResponse(
            422,
            {
                "detail": [
                    _detail(
                        ["body"],
                        f"Export exceeds the plan limit of {max_rows:,} rows ({rows:,} rows)",
                        "value_error.limit",
                    )
                ]
            },
        )
    return params, fmt, rows


def estimate(config: SandboxConfig, params: dict[str, Any], fmt: str, rows: int) -> dict[str, Any]:
    """Size estimate from a sample of the first rows (cheap even for huge exports)."""
    sample_rows = min(rows, 200)
    if sample_rows:
        sample_days = max(1, math.ceil(sample_rows / max(1, rows // max(1, _days(params)))))
        sample = dict(params, date_to=_shift(params["date_from"], sample_days - 1))
        sample_size = sealmetrics_file_size(config, sample, fmt)
        sample_count = sealmetrics_row_count(
            config,
            params["site_id"],
            params["export_type"],
            sample["date_from"],
            sample["date_to"],
            params["filters"],
        )
        size = int(sample_size / max(1, sample_count) * rows)
    else:
        size = 2 if fmt == "json" else 64
    background = rows >= BACKGROUND_THRESHOLD
    return {
        "estimated_rows": rows,
        "estimated_size_bytes": size,
        "estimated_size_human": human_size(size),
        "recommended_format": "csv",
        "will_use_background_job": background,
        "estimated_duration_seconds": max(1, math.ceil(config.sealmetrics_job_delay)) if background else 1,
    }


def _days(params: dict[str, Any]) -> int:
    return (date.fromisoformat(params["date_to"]) - date.fromisoformat(params["date_from"])).days + 1


def _shift(day: str, n: int) -> str:
    return date.fromordinal(date.fromisoformat(day).toordinal() + n).isoformat()


def _job_size(job: Job) -> int:
    if job.size is None:
        job.size = sealmetrics_file_size(job.data_config, job.params, job.fmt)
    return job.size


def job_json(sbx: SandboxServer, job: Job, now: float | None = None) -> dict[str, Any]:
    """The documented job object (plus error_message, which the docs reference for failed jobs)."""
    now = time.time() if now is None else now
    ttl = float(sbx.config.sealmetrics_link_ttl)
    status, progress = job.phase(now, ttl)
    done = status in ("completed", "expired")
    completed_at = job.created + (job.delay if job.background else 0.0)
    started = job.created + (0.15 * job.delay if job.background else 0.0)
    size = _job_size(job) if done else None
    return {
        "id": job.id,
        "job_id": job.job_id,
        "site_id": job.params["site_id"],
        "export_type": job.params["export_type"],
        "format": job.fmt,
        "date_from": job.params["date_from"],
        "date_to": job.params["date_to"],
        "filters": job.params["filters"],
        "status": status,
        "estimated_rows": job.rows,
        "actual_rows": job.rows if done else None,
        "file_size_bytes": size,
        "file_size_human": human_size(size) if size is not None else None,
        "progress_percent": progress,
        "download_url": f"{job.base_url}{PREFIX}/download/{job.token}" if done else None,
        "download_expires_at": _iso(completed_at + ttl) if done else None,
        "started_at": _iso(started) if now >= started else None,
        "completed_at": _iso(completed_at) if done else None,
        "created_at": _iso(job.created),
        "error_message": FAIL_MESSAGE if status == "failed" else None,
    }


def _filename(job_params: dict[str, Any], fmt: str) -> str:
    return "sealmetrics_{}_{}_{}.{}".format(
        job_params["export_type"],
        job_params["date_from"].replace("-", ""),
        job_params["date_to"].replace("-", ""),
        fmt,
    )


def _file_response(config: SandboxConfig, params: dict[str, Any], fmt: str, size: int) -> Response:
    headers = {
        "Content-Type": CONTENT_TYPES[fmt],
        "Content-Disposition": f'attachment; filename="{_filename(params, fmt)}"',
    }
    return Response(200, headers=headers, chunks=sealmetrics_file_chunks(config, params, fmt), length=size)


def handle(sbx: SandboxServer, req: Request) -> Response:
    path, method = req.path, req.method
    if path.startswith(PREFIX + "/download/"):
        if method != "GET":
            raise ErrorResponse(405, {"detail": "Method Not Allowed"})
        return _download(sbx, path[len(PREFIX + "/download/") :])
    _auth(req)
    if path == PREFIX:
        if method == "POST":
            return _create(sbx, req)
        if method == "GET":
            return _list(sbx, req)
    elif path == PREFIX + "/estimate":
        if method == "POST":
            site = _site(req)
            params, fmt, rows = validate_body(req, site, sbx.config)
            return json_response(200, estimate(sbx.config, params, fmt, rows))
    elif path == PREFIX + "/stream":
        if method == "POST":
            return _stream(sbx, req)
    elif path.count("/") == 4:
        job_id = path[len(PREFIX) + 1 :]
        if method == "GET":
            return json_response(200, job_json(sbx, _find(sbx, req, job_id)))
        if method == "DELETE":
            job = _find(sbx, req, job_id)
            with sbx.lock:
                st = sbx.state["sealmetrics"]
                st["jobs"].pop(job.job_id, None)
                st["tokens"].pop(job.token, None)
            return Response(204)
    else:
        raise ErrorResponse(404, {"detail": "Not Found"})
    raise ErrorResponse(405, {"detail": "Method Not Allowed"})


def _find(sbx: SandboxServer, req: Request, job_id: str) -> Job:
    site = _site(req)
    with sbx.lock:
        job = sbx.state["sealmetrics"]["jobs"].get(job_id)
    if job is None or job.params["site_id"] != site:
        raise ErrorResponse(404, {"detail": "Export not found"})
    return job


def _create(sbx: SandboxServer, req: Request) -> Response:
    site = _site(req)
    config = sbx.config
    params, fmt, rows = validate_body(req, site, config)
    est = estimate(config, params, fmt, rows)
    background = rows >= BACKGROUND_THRESHOLD
    now = time.time()
    ttl = float(config.sealmetrics_link_ttl)
    with sbx.lock:
        st = sbx.state["sealmetrics"]
        if background:
            running = [j for j in st["jobs"].values() if j.phase(now, ttl)[0] in RUNNING]
            cap = int(config.sealmetrics_max_concurrent)
            if len(running) >= cap:
                retry = max(1, math.ceil(min(j.created + j.delay for j in running) - now))
                raise ErrorResponse(
                    429,
                    {"detail": f"Concurrent export limit reached ({cap} running). Retry later."},
                    {"Retry-After": str(retry)},
                )
        fail = req.fault == "job_fail"
        if background and not fail and config.sealmetrics_fail_jobs > 0:
            config.sealmetrics_fail_jobs -= 1
            fail = True
        job = Job(
            id=st["next_id"],
            job_id=str(uuid.uuid4()),
            params=params,
            fmt=fmt,
            rows=rows,
            background=background,
            fail=fail,
            created=now,
            delay=float(config.sealmetrics_job_delay),
            token=secrets.token_urlsafe(24),
            base_url=req.base_url,
            data_config=copy.deepcopy(config),
        )
        st["next_id"] += 1
        st["jobs"][job.job_id] = job
        st["tokens"][job.token] = job
    body = job_json(sbx, job, now)
    if body["status"] == "completed":
        message = "Export completed. Ready for download."
    elif body["status"] == "failed":
        message = "Export failed."
    else:
        message = f"Export job created. Poll GET /exports/{job.job_id} until status is completed."
    return json_response(201, {"job": body, "estimate": est, "message": message})


def _list(sbx: SandboxServer, req: Request) -> Response:
    site = _site(req)
    errors = []
    values: dict[str, int] = {}
    for name, default, lo, hi in (("limit", 20, 1, 100), ("offset", 0, 0, None)):
        raw = req.q(name)
        try:
            values[name] = default if raw is None else int(raw)
        except ValueError:
            errors.append(_detail(["query", name], "value is not a valid integer", "type_error.integer"))
            continue
        if values[name] < lo:
            errors.append(
                _detail(
                    ["query", name],
                    f"ensure this value is greater than or equal to {lo}",
                    "value_error.number.not_ge",
                )
            )
        elif hi is not None and values[name] > hi:
            errors.append(
                _detail(
                    ["query", name],
                    f"ensure this value is less than or equal to {hi}",
                    "value_error.number.not_le",
                )
            )
    inc_raw = (req.q("include_expired") or "false").lower()
    if inc_raw not in ("true", "false", "1", "0", "yes", "no"):
        errors.append(
            _detail(["query", "include_expired"], "value could not be parsed to a boolean", "type_error.bool")
        )
    if errors:
        raise ErrorResponse(422, {"detail": errors})
    include_expired = inc_raw in ("true", "1", "yes")
    now = time.time()
    with sbx.lock:
        jobs = [j for j in sbx.state["sealmetrics"]["jobs"].values() if j.params["site_id"] == site]
    jobs.sort(key=lambda j: j.id, reverse=True)
    items = []
    for j in jobs:
        full = job_json(sbx, j, now)
        if full["status"] == "expired" and not include_expired:
            continue
        items.append(
            {
                k: full[k]
                for k in (
                    "id",
                    "job_id",
                    "export_type",
                    "format",
                    "status",
                    "actual_rows",
                    "file_size_human",
                    "download_url",
                    "created_at",
                )
            }
        )
    page = items[values["offset"] : values["offset"] + values["limit"]]
    return json_response(200, {"exports": page, "total": len(items)})


def _stream(sbx: SandboxServer, req: Request) -> Response:
    site = _site(req)
    config = copy.deepcopy(sbx.config)
    params, fmt, rows = validate_body(req, site, config)
    if rows >= BACKGROUND_THRESHOLD:
        raise ErrorResponse(
            413,
            {
                "detail": f"Export too large for streaming ({rows:,} rows). "
                "Use POST /exports to create a background job."
            },
        )
    return _file_response(config, params, fmt, sealmetrics_file_size(config, params, fmt))


def _download(sbx: SandboxServer, token: str) -> Response:
    with sbx.lock:
        job = sbx.state["sealmetrics"]["tokens"].get(token)
    if job is None:
        raise ErrorResponse(404, {"detail": "Download link not found"})
    status, _ = job.phase(time.time(), float(sbx.config.sealmetrics_link_ttl))
    if status == "expired":
        raise ErrorResponse(410, {"detail": "Download link expired"})
    if status != "completed":
        raise ErrorResponse(404, {"detail": "Download link not found"})
    return _file_response(job.data_config, job.params, job.fmt, _job_size(job))
