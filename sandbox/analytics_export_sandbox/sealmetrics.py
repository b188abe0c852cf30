"""Fake Sealmetrics exports API: sync/background jobs, download links with expiry, streaming, caps.

Follows the vendor's current docs and OpenAPI spec (``sealmetrics/docs``): ``account_id`` on
every route (``site_id`` is a 400), the error envelope on every error, 429 as
``rate_limit_exceeded`` (with ``Retry-After``) or ``quota_exceeded``, ``X-RateLimit-*`` on every
response, full job objects in lists, 404 (no 410) for an expired token, 422 for a non-UUID job
id. What the docs leave open is a ``SandboxConfig`` switch: how the concurrent-export cap is
signalled (``sealmetrics_cap_response``) and which type a JSON stream has
(``sealmetrics_stream_json_type``).
"""

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
STREAM_TYPES = {"csv": "text/csv; charset=utf-8", "application/json": "application/json"}
NDJSON = "application/x-ndjson"
#: The errors page's code for each status the fault injector sends.
ERROR_CODES = {
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "database_unavailable",
}
#: How the plan's concurrent-export cap may be signalled (the docs do not say): status and code.
CAP_RESPONSES: dict[str, tuple[int, str]] = {
    "quota_exceeded": (429, "quota_exceeded"),
    "rate_limit_exceeded": (429, "rate_limit_exceeded"),
    "conflict": (409, "conflict"),
}
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
    return {"jobs": {}, "tokens": {}, "next_id": 1, "created": 0, "rate": {"start": 0.0, "count": 0}}


def _detail(loc: list[Any], msg: str, typ: str) -> dict[str, Any]:
    """One validation error as the errors page documents it: ``{field, message, type}``."""
    return {"field": ".".join(str(part) for part in loc), "message": msg, "type": typ}


def envelope(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The error envelope every non-2xx answer uses, with a fresh request id."""
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return {"error": error, "request_id": str(uuid.uuid4())}


def error(
    status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> ErrorResponse:
    body = envelope(code, message, detail)
    return ErrorResponse(status, body, {"X-Request-ID": body["request_id"], **(headers or {})})


def invalid(errors: list[dict[str, Any]]) -> ErrorResponse:
    return error(422, "validation_error", "Request validation failed", errors)


def _auth(req: Request) -> None:
    if req.headers.get("X-API-Key") != CREDENTIALS["sealmetrics"]["api_key"]:
        raise error(401, "unauthorized", "Invalid or missing API key")


def _site(req: Request) -> str:
    """The ``account_id`` (site slug) of the request; ``site_id`` is rejected as the real API does."""
    if "site_id" in req.query:
        raise error(
            400,
            "bad_request",
            "site_id is not accepted on /exports routes; pass account_id (the site slug) instead.",
        )
    site = req.q("account_id")
    if not site:
        raise invalid([_detail(["query", "account_id"], "Field required", "missing")])
    if site not in SEALMETRICS_SITES:
        raise error(404, "account_not_found", f"Account {site!r} not found")
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
        raise invalid([_detail(["body"], "value is not a valid dict", "type_error.dict")])
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
        raise invalid(errors)
    assert d_from is not None and d_to is not None
    params = {
        "account_id": site,
        "export_type": export_type,
        "date_from": d_from.isoformat(),
        "date_to": d_to.isoformat(),
        "filters": filters,
    }
    rows = sealmetrics_row_count(config, site, export_type, d_from, d_to, filters)
    max_rows = config.sealmetrics_max_rows
    if max_rows is not None and rows > max_rows:
        raise invalid(
            [
                _detail(
                    ["body"],
                    f"Export exceeds the plan limit of {max_rows:,} rows ({rows:,} rows)",
                    "value_error.limit",
                )
            ]
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
            params["account_id"],
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
    """The job object of the spec's ``ExportJobInfo`` (lists carry the same full objects)."""
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
        "account_id": job.params["account_id"],
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
        "expires_at": _iso(completed_at + ttl),
        "created_by": None,
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


def stream_layout(config: SandboxConfig, fmt: str) -> tuple[str, str]:
    """(Content-Type, file layout) of a stream answer: csv, or json as an array or ndjson."""
    if fmt == "csv":
        return STREAM_TYPES["csv"], "csv"
    media = config.sealmetrics_stream_json_type
    return media, "ndjson" if media == NDJSON else "json"


def guard(sbx: SandboxServer, req: Request) -> None:
    """The per-minute request limit: over it, 429 ``rate_limit_exceeded`` with ``Retry-After``."""
    limit = sbx.config.sealmetrics_rate_limit
    if limit is None:
        return
    now = time.time()
    with sbx.lock:
        window = _rate_window(sbx, now)
        window["count"] += 1
        over = window["count"] > limit
        reset = window["start"] + float(sbx.config.sealmetrics_rate_window)
    if over:
        retry = max(1, math.ceil(reset - now))
        raise error(
            429,
            "rate_limit_exceeded",
            f"Too many requests. Please retry after {retry} seconds.",
            headers={"Retry-After": str(retry)},
        )


def _rate_window(sbx: SandboxServer, now: float) -> dict[str, float]:
    window: dict[str, float] = sbx.state["sealmetrics"]["rate"]
    if now >= window["start"] + float(sbx.config.sealmetrics_rate_window):
        window.update(start=now, count=0)
    return window


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """``X-RateLimit-*`` on every response (reset: Unix seconds), as the rate-limits page says."""
    limit = sbx.config.sealmetrics_rate_limit
    if limit is None:
        return {}
    with sbx.lock:
        window = _rate_window(sbx, time.time())
        remaining = max(0, limit - int(window["count"]))
        reset = math.ceil(window["start"] + float(sbx.config.sealmetrics_rate_window))
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


def handle(sbx: SandboxServer, req: Request) -> Response:
    path, method = req.path, req.method
    if path.startswith(PREFIX + "/download/"):
        if method != "GET":
            raise error(405, "method_not_allowed", "Method Not Allowed")
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
        raise error(404, "not_found", "Not Found")
    raise error(405, "method_not_allowed", "Method Not Allowed")


def _find(sbx: SandboxServer, req: Request, job_id: str) -> Job:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise invalid([_detail(["path", "job_id"], "Input should be a valid UUID", "uuid_parsing")]) from None
    site = _site(req)
    with sbx.lock:
        job = sbx.state["sealmetrics"]["jobs"].get(job_id)
    if job is None or job.params["account_id"] != site:
        raise error(404, "not_found", "Export not found")
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
                status, code = CAP_RESPONSES[config.sealmetrics_cap_response]
                raise error(
                    status,
                    code,
                    f"Concurrent export limit reached ({cap} running). Retry later.",
                    {"limit": cap, "running": len(running)},
                    {"Retry-After": str(retry)} if config.sealmetrics_cap_retry_after else None,
                )
        quota = config.sealmetrics_export_quota
        if quota is not None and st["created"] >= quota:
            retry_after = config.sealmetrics_quota_retry_after
            raise error(
                429,
                "quota_exceeded",
                f"Export quota of {quota} exports for this period is exhausted.",
                {"quota": quota, "used": st["created"]},
                {"Retry-After": str(retry_after)} if retry_after is not None else None,
            )
        st["created"] += 1
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
        raise invalid(errors)
    include_expired = inc_raw in ("true", "1", "yes")
    now = time.time()
    with sbx.lock:
        jobs = [j for j in sbx.state["sealmetrics"]["jobs"].values() if j.params["account_id"] == site]
    jobs.sort(key=lambda j: j.id, reverse=True)
    items = []
    for j in jobs:
        full = job_json(sbx, j, now)
        if full["status"] == "expired" and not include_expired:
            continue
        items.append(full)
    page = items[values["offset"] : values["offset"] + values["limit"]]
    return json_response(200, {"exports": page, "total": len(items)})


def _stream(sbx: SandboxServer, req: Request) -> Response:
    site = _site(req)
    config = copy.deepcopy(sbx.config)
    params, fmt, rows = validate_body(req, site, config)
    if rows >= BACKGROUND_THRESHOLD:
        raise error(
            413,
            "payload_too_large",
            f"Export too large for streaming ({rows:,} rows). Use POST /exports to create a background job.",
        )
    media, layout = stream_layout(config, fmt)
    ext = "ndjson" if layout == "ndjson" else fmt
    name = f"{params['export_type']}_{params['date_from']}_{params['date_to']}.{ext}"
    headers = {
        "Content-Type": media,
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    }
    chunks = sealmetrics_file_chunks(config, params, layout)
    return Response(200, headers=headers, chunks=chunks, length=sealmetrics_file_size(config, params, layout))


def _download(sbx: SandboxServer, token: str) -> Response:
    with sbx.lock:
        job = sbx.state["sealmetrics"]["tokens"].get(token)
    if job is None:
        raise error(404, "not_found", "Download link not found")
    status, _ = job.phase(time.time(), float(sbx.config.sealmetrics_link_ttl))
    if status != "completed":  # the spec documents no 410: an expired token is not found
        raise error(404, "not_found", "Download link not found or expired")
    return _file_response(job.data_config, job.params, job.fmt, _job_size(job))
