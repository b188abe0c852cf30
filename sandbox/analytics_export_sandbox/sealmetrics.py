"""Fake Sealmetrics exports API: export rows and files, sync/background jobs, links, streaming, caps.

Rows and file bytes are a pure function of ``seed``, ``sealmetrics_rows_per_day`` and the job's
parameters; :func:`sealmetrics_file_chunks` is the exact file a job serves. Follows the vendor's
current docs and OpenAPI spec (``sealmetrics/docs``; real-services.md, Sealmetrics): ``account_id``
on every route (``site_id`` is a 400), the error envelope on every error, 429 as
``rate_limit_exceeded`` (with ``Retry-After``) or ``quota_exceeded``, ``X-RateLimit-*`` on every
response, full job objects in lists, 404 (no 410) for an expired token, 422 for a non-UUID job id,
422 for a filter value beyond the spec's ``ExportFilters`` lengths (null is allowed: no filter).

What the docs leave open is a ``SandboxConfig`` switch:

- how the plan's concurrent-export cap is signalled: ``sealmetrics_cap_response`` (429
  ``quota_exceeded``, 429 ``rate_limit_exceeded`` or 409 ``conflict``), with or without
  ``Retry-After``: ``sealmetrics_cap_retry_after``;
- a plan quota of creates, and whether its 429 carries ``Retry-After``:
  ``sealmetrics_export_quota``/``sealmetrics_quota_retry_after``;
- which type a JSON stream has (an array or ndjson): ``sealmetrics_stream_json_type``;
- when a day's aggregates are final (undocumented): ``late_share["sealmetrics"]``/
  ``late_horizon["sealmetrics"]`` make every count column of a day grow until settled (late.py).
  A stream shows them as of its request; a job as of its creation (a real job computes its file
  once), so its size, rows and download always agree.

Knobs for the known behaviour: ``sealmetrics_job_delay``, ``sealmetrics_link_ttl``,
``sealmetrics_max_concurrent``, ``sealmetrics_max_rows``, ``sealmetrics_rate_limit``/
``sealmetrics_rate_window``, ``sealmetrics_fail_jobs`` and ``sealmetrics_row_padding`` (bigger
files for memory tests).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .late import grown, late_on
from .server import ErrorResponse, Request, Response, json_response
from .synthetic import mix, parse_date, stable_hash

if TYPE_CHECKING:
    from .server import SandboxServer

# -- data: export rows and files ---------------------------------------------------------------------
SEALMETRICS_SITES: tuple[str, ...] = ("demo-site", "shop-site")
SEALMETRICS_FILTER_KEYS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "device_type",
    "browser",
    "os",
    "content_grouping",
    "conversion_type",
    "advanced_filters",
)
#: (min, max) length of each filter value, from the spec's ``ExportFilters`` (null is allowed too).
SEALMETRICS_FILTER_LENGTHS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(SEALMETRICS_FILTER_KEYS, (0, 255)),
    "country": (2, 2),
    "device_type": (0, 50),
    "browser": (0, 100),
    "os": (0, 100),
    "conversion_type": (0, 100),
    "advanced_filters": (0, 1000),
}
BACKGROUND_THRESHOLD = 10_000

_SM_DIM_COLUMN = {
    "sources": "utm_source",
    "mediums": "utm_medium",
    "campaigns": "utm_campaign",
    "terms": "utm_term",
    "countries": "country",
    "devices": "device_type",
    "browsers": "browser",
    "os": "os",
}
_SM_DIM_VALUES = {
    "utm_source": ("google", "facebook", "newsletter", "bing", "twitter", "linkedin", "direct", "reddit"),
    "utm_medium": ("cpc", "organic", "email", "social", "referral", "display"),
    "utm_campaign": ("spring_sale", "black_friday", "brand", "retargeting", "launch"),
    "utm_term": ("running shoes", "leather bags", "sneakers", "backpack", "sandals"),
    "country": (
        "ES",
        "US",
        "DE",
        "FR",
        "GB",
        "IT",
        "PT",
        "MX",
        "BR",
        "NL",
        "IL",
        "IN",
        "JP",
        "CA",
        "AU",
        "AR",
        "CL",
        "CO",
        "PE",
        "SE",
        "NO",
        "DK",
        "FI",
        "PL",
        "CZ",
        "AT",
        "CH",
        "BE",
        "IE",
        "GR",
        "TR",
        "RO",
        "HU",
        "UA",
        "ZA",
        "EG",
        "MA",
        "NG",
        "KE",
        "CN",
        "KR",
        "SG",
        "TH",
        "VN",
        "ID",
        "PH",
        "MY",
        "NZ",
        "SA",
        "AE",
    ),
    "device_type": ("desktop", "mobile", "tablet"),
    "browser": ("Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera", "Brave", "Vivaldi"),
    "os": ("Windows", "iOS", "Android", "macOS", "Linux", "ChromeOS", "iPadOS"),
}
_SM_SECTIONS = ("products", "blog", "docs", "help", "category", "landing")
_SM_CONV = ("purchase", "lead", "signup", "subscription")
_SM_MICRO = ("add_to_cart", "newsletter_click", "video_play", "download", "scroll_75")

SEALMETRICS_COLUMNS: dict[str, tuple[str, ...]] = {
    "pages": ("date", "path", "views", "entrances", "conversions"),
    "conversions": ("date", "conversion_id", "conversion_type", "path", "utm_source", "country", "amount"),
    "microconversions": ("date", "microconversion_id", "label", "path", "utm_source", "country"),
    "time_series": ("date", "entrances", "page_views", "conversions", "revenue"),
    "landing_pages": ("date", "landing_page", "entrances", "bounce_rate", "conversions", "revenue"),
    **{
        t: ("date", col, "entrances", "page_views", "conversions", "revenue")
        for t, col in _SM_DIM_COLUMN.items()
    },
}
SEALMETRICS_EXPORT_TYPES: tuple[str, ...] = (
    "pages",
    "sources",
    "mediums",
    "campaigns",
    "terms",
    "countries",
    "devices",
    "browsers",
    "os",
    "conversions",
    "microconversions",
    "time_series",
    "landing_pages",
)


def _dates(start: date, end: date) -> Iterator[date]:
    """Every date from ``start`` to ``end``, both included."""
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def _sm_filter_key(filters: dict[str, str] | None) -> str:
    return json.dumps(filters or {}, sort_keys=True)


def sealmetrics_rows_for_day(config: SandboxConfig, export_type: str, filters: dict[str, str] | None) -> int:
    """Rows one day contributes: the type's volume shrunk by a stable selectivity per filter."""
    base = config.sealmetrics_rows_per_day.get(export_type, 0)
    filters = filters or {}
    if export_type == "time_series":
        return base
    col = _SM_DIM_COLUMN.get(export_type)
    if col is not None and col in filters:
        return min(base, 1)
    factor = 1.0
    for k, v in sorted(filters.items()):
        factor /= 2 + stable_hash("sm-sel", config.seed, k, v) % 4
    return math.ceil(base * factor) if base else 0


def sealmetrics_row_count(config: SandboxConfig, job_params: dict[str, Any]) -> int:
    """Exact row count of an export (used for the 10,000-row sync/background decision)."""
    days = (parse_date(job_params["date_to"]) - parse_date(job_params["date_from"])).days + 1
    per_day = sealmetrics_rows_for_day(config, job_params["export_type"], job_params.get("filters"))
    return max(0, days) * per_day


#: The columns that count something (they grow while a day settles); ids, rates and amounts do not.
_SM_COUNT_COLUMNS = ("views", "entrances", "page_views", "conversions", "revenue")


def _sm_dim_value(col: str, i: int) -> str:
    vals = _SM_DIM_VALUES[col]
    v = vals[i % len(vals)]
    return v if i < len(vals) else f"{v}-{i // len(vals)}"


def sealmetrics_rows(
    config: SandboxConfig, job_params: dict[str, Any], as_of: float | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of an export in file order (date ascending, then row index).

    ``job_params`` as a created job holds them: ``account_id``, ``export_type``, ``date_from``,
    ``date_to`` (inclusive; text or dates) and ``filters``. Counts are final unless ``as_of``
    (sandbox epoch seconds) asks what was visible then.
    """
    settling = as_of is not None and late_on(config, "sealmetrics")
    site_id, export_type = job_params["account_id"], job_params["export_type"]
    date_from, date_to = job_params["date_from"], job_params["date_to"]
    filters = dict(job_params.get("filters") or {})
    n = sealmetrics_rows_for_day(config, export_type, filters)
    fkey = _sm_filter_key(filters)
    padding = "x" * config.sealmetrics_row_padding if config.sealmetrics_row_padding > 0 else None
    dim_col = _SM_DIM_COLUMN.get(export_type)
    for d in _dates(parse_date(date_from), parse_date(date_to)):
        ds = d.isoformat()
        day_start = float((d - date(1970, 1, 1)).days * 86_400)
        base = stable_hash("sealmetrics", config.seed, site_id, export_type, ds, fkey)
        for i in range(n):
            r = mix(base + i)
            views = 1 + r % 5000
            entr = (r >> 13) % (views + 1)
            conv = (r >> 26) % (entr // 20 + 1)
            revenue = round(conv * (15 + (r >> 40) % 20000 / 100), 2)
            row: dict[str, Any]
            if export_type == "pages":
                row = {
                    "date": ds,
                    "path": f"/{_SM_SECTIONS[i % len(_SM_SECTIONS)]}/item-{i}",
                    "views": views,
                    "entrances": entr,
                    "conversions": conv,
                }
            elif export_type == "landing_pages":
                row = {
                    "date": ds,
                    "landing_page": f"/{_SM_SECTIONS[i % len(_SM_SECTIONS)]}/lp-{i}",
                    "entrances": entr,
                    "bounce_rate": round((r >> 33) % 10000 / 100, 2),
                    "conversions": conv,
                    "revenue": revenue,
                }
            elif export_type == "time_series":
                row = {
                    "date": ds,
                    "entrances": 1000 + r % 9000,
                    "page_views": 3000 + (r >> 14) % 30000,
                    "conversions": (r >> 30) % 300,
                    "revenue": round((r >> 40) % 5_000_000 / 100, 2),
                }
            elif export_type in ("conversions", "microconversions"):
                kind = "conversion" if export_type == "conversions" else "microconversion"
                row = {"date": ds, f"{kind}_id": f"{kind[:4]}-{ds.replace('-', '')}-{i:06d}"}
                if export_type == "conversions":
                    row["conversion_type"] = filters.get("conversion_type", _SM_CONV[r % len(_SM_CONV)])
                else:
                    row["label"] = _SM_MICRO[r % len(_SM_MICRO)]
                row["path"] = f"/{_SM_SECTIONS[(r >> 8) % len(_SM_SECTIONS)]}/item-{(r >> 16) % 900}"
                row["utm_source"] = filters.get("utm_source", _SM_DIM_VALUES["utm_source"][(r >> 24) % 8])
                row["country"] = filters.get("country", _SM_DIM_VALUES["country"][(r >> 32) % 50])
                if export_type == "conversions":
                    row["amount"] = round(5 + (r >> 40) % 50000 / 100, 2)
            else:
                assert dim_col is not None
                value = filters[dim_col] if dim_col in filters else _sm_dim_value(dim_col, i)
                row = {
                    "date": ds,
                    dim_col: value,
                    "entrances": entr,
                    "page_views": views,
                    "conversions": conv,
                    "revenue": revenue,
                }
            if settling:
                for col in _SM_COUNT_COLUMNS:
                    if col in row:
                        row[col] = grown(
                            config, "sealmetrics", row[col], day_start, day_start + 86_400, as_of, r
                        )
            if padding is not None:
                row["padding"] = padding
            yield row


def sealmetrics_columns(config: SandboxConfig, export_type: str) -> list[str]:
    cols = list(SEALMETRICS_COLUMNS[export_type])
    if config.sealmetrics_row_padding > 0:
        cols.append("padding")
    return cols


def sealmetrics_file_chunks(
    config: SandboxConfig,
    job_params: dict[str, Any],
    fmt: str,
    chunk_size: int = 64 * 1024,
    as_of: float | None = None,
) -> Iterator[bytes]:
    """Exact bytes of an export file (CSV with header, a JSON array or ndjson), generated lazily."""
    rows = sealmetrics_rows(config, job_params, as_of)
    parts: list[str] = []
    size = 0
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(sealmetrics_columns(config, job_params["export_type"]))
        for row in rows:
            writer.writerow(row.values())
            if buf.tell() >= chunk_size:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        if buf.tell():
            yield buf.getvalue().encode()
        return
    if fmt == "ndjson":
        for row in rows:
            parts.append(json.dumps(row, separators=(",", ":")) + "\n")
            size += len(parts[-1])
            if size >= chunk_size:
                yield "".join(parts).encode()
                parts, size = [], 0
        yield "".join(parts).encode()
        return
    if fmt != "json":
        raise ValueError(f"unknown format {fmt!r}")
    parts.append("[")
    first = True
    for row in rows:
        text = ("" if first else ",") + json.dumps(row, separators=(",", ":"))
        first = False
        parts.append(text)
        size += len(text)
        if size >= chunk_size:
            yield "".join(parts).encode()
            parts, size = [], 0
    parts.append("]")
    yield "".join(parts).encode()


def sealmetrics_file_size(
    config: SandboxConfig, job_params: dict[str, Any], fmt: str, as_of: float | None = None
) -> int:
    """Byte length of the file (one pass over the generator; never holds the file in memory)."""
    return sum(len(c) for c in sealmetrics_file_chunks(config, job_params, fmt, as_of=as_of))


def human_size(n: int) -> str:
    """'44.2 KB'-style sizes as in the Sealmetrics docs."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# -- API: /api/v1/exports ----------------------------------------------------------------------------
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
    #: Sandbox time the file's counts are computed at (None: final data, no late switch on).
    as_of: float | None = None

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


def _body_date(errors: list[dict[str, Any]], body: dict[str, Any], name: str) -> date | None:
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


def _length_errors(key: str, value: str) -> list[dict[str, Any]]:
    """The spec's length limits of one filter value, as pydantic reports them."""
    low, high = SEALMETRICS_FILTER_LENGTHS[key]
    loc = ["body", "filters", key]
    if len(value) > high:
        return [
            _detail(loc, f"ensure this value has at most {high} characters", "value_error.any_str.max_length")
        ]
    if len(value) < low:
        return [
            _detail(loc, f"ensure this value has at least {low} characters", "value_error.any_str.min_length")
        ]
    return []


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
    d_from = _body_date(errors, body, "date_from")
    d_to = _body_date(errors, body, "date_to")
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
        elif value is None:
            continue  # null: the same as no filter
        elif not isinstance(value, str):
            errors.append(_detail(["body", "filters", key], "str type expected", "type_error.str"))
        else:
            errors += _length_errors(key, value)
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
        "filters": {key: value for key, value in filters.items() if value is not None},
    }
    rows = sealmetrics_row_count(config, params)
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
        sample_count = sealmetrics_row_count(config, sample)
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
        job.size = sealmetrics_file_size(job.data_config, job.params, job.fmt, job.as_of)
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


def _file_response(job: Job, size: int) -> Response:
    headers = {
        "Content-Type": CONTENT_TYPES[job.fmt],
        "Content-Disposition": f'attachment; filename="{_filename(job.params, job.fmt)}"',
    }
    chunks = sealmetrics_file_chunks(job.data_config, job.params, job.fmt, as_of=job.as_of)
    return Response(200, headers=headers, chunks=chunks, length=size)


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
        job: Job | None = sbx.state["sealmetrics"]["jobs"].get(job_id)
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
            as_of=config.clock() if late_on(config, "sealmetrics") else None,
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
    as_of = config.clock() if late_on(config, "sealmetrics") else None  # once: size and bytes agree
    chunks = sealmetrics_file_chunks(config, params, layout, as_of=as_of)
    size = sealmetrics_file_size(config, params, layout, as_of)
    return Response(200, headers=headers, chunks=chunks, length=size)


def _download(sbx: SandboxServer, token: str) -> Response:
    with sbx.lock:
        job = sbx.state["sealmetrics"]["tokens"].get(token)
    if job is None:
        raise error(404, "not_found", "Download link not found")
    status, _ = job.phase(time.time(), float(sbx.config.sealmetrics_link_ttl))
    if status != "completed":  # the spec documents no 410: an expired token is not found
        raise error(404, "not_found", "Download link not found or expired")
    return _file_response(job, _job_size(job))
