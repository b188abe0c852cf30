"""Fake Peer5 POST /v1/export: metric rows per interval bucket, as JSON or the documented CSV.

Rows are a pure function of ``seed``, the bucket, the metric and the filters/dimensions;
:func:`peer5_rows` and :func:`peer5_csv` give the truth. The route applies the documented interval
rounding, range, age and dimension rules.

Open questions of real-services.md (Peer5) and their ``SandboxConfig`` switches:

- whether the bucket starting at ``to`` (the END of the range) is included: ``peer5_to_inclusive``;
- whether a row may lack a metric (absent, not null or 0): ``peer5_sparse``;
- the per-minute limit (number not given; over it, every request gets 429 while it stays crossed):
  ``peer5_rate_limit``/``peer5_rate_window``;
- when a bucket's aggregates are final (undocumented): ``late_share["peer5"]``/``late_horizon["peer5"]``
  make every metric of a bucket grow until settled (late.py), in JSON and CSV alike.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .late import grown, late_on
from .server import ErrorResponse, Request, Response, json_response
from .synthetic import DAY_MS, stable_hash

if TYPE_CHECKING:
    from .server import SandboxServer

# -- data: metric rows -------------------------------------------------------------------------------
PEER5_INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "10m": 600_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "3h": 10_800_000,
    "12h": 43_200_000,
    "1d": DAY_MS,
    "7d": 7 * DAY_MS,
    "14d": 14 * DAY_MS,
}
PEER5_METRICS: tuple[str, ...] = ("http", "p2p", "played", "rebuffered", "sessions")
PEER5_DIMENSION_VALUES: dict[str, tuple[str, ...]] = {
    "browser.name": ("Chrome", "Firefox", "Safari", "Edge"),
    "country.code": ("US", "DE", "IL", "BR", "IN"),
    "city.name": ("New York", "Berlin", "Tel Aviv", "Sao Paulo"),
    "isp.name": ("Comcast", "Deutsche Telekom", "Bezeq", "Vivo"),
    "os.name": ("Windows", "macOS", "Android", "iOS"),
    "session.page": ("/live", "/vod/intro", "/vod/finale"),
}


def peer5_rows(
    config: SandboxConfig,
    from_ms: int,
    to_ms: int,
    interval: str,
    metrics: Sequence[str],
    filters: dict[str, Sequence[str]] | None = None,
    dimensions: Sequence[str] | None = None,
    as_of: float | None = None,
) -> list[dict[str, Any]]:
    """Rows for buckets from_ms <= t < to_ms; with dimensions one row per (t, value combination).

    Metrics are final unless ``as_of`` (sandbox epoch seconds) asks what was visible then.
    """
    step = PEER5_INTERVALS_MS[interval]
    filters = filters or {}
    dims = list(dimensions or [])
    value_lists = []
    for dim in dims:
        allowed = PEER5_DIMENSION_VALUES[dim]
        if dim in filters:
            allowed = tuple(v for v in allowed if v in set(filters[dim]))
        value_lists.append(allowed)
    # Filters on non-split fields shrink the volume proportionally to the share of values kept.
    share = 1.0
    for key, vals in filters.items():
        if key not in dims:
            known = PEER5_DIMENSION_VALUES.get(key, ())
            kept = len([v for v in set(vals) if v in known])
            share *= kept / len(known) if known else 0.0
    fkey = json.dumps({k: sorted(v) for k, v in filters.items()}, sort_keys=True)
    minutes = step / 60_000
    rows: list[dict[str, Any]] = []
    t = int(from_ms)
    while t < to_ms:
        for combo in itertools.product(*value_lists):
            row: dict[str, Any] = {"timestamp": t}
            for dim, val in zip(dims, combo, strict=True):
                row[dim] = val
            part = share / max(1, 2 ** len(dims))
            for m in metrics:
                r = stable_hash("peer5", config.seed, t, interval, m, combo, fkey)
                if config.peer5_sparse and r % 5 == 0:
                    continue  # sparse: no value for this metric in this row, not even null
                noise = 0.6 + (r % 800) / 1000
                value: float
                if m == "http":
                    value = int(2_000_000 * minutes * part * noise)
                elif m == "p2p":
                    value = int(3_500_000 * minutes * part * noise)
                elif m == "played":
                    value = int(55_000 * minutes * 40 * part * noise)
                elif m == "rebuffered":
                    value = int(900 * minutes * 40 * part * noise)
                else:
                    value = round(40 * part * noise, 2)
                row[m] = grown(config, "peer5", value, t / 1000, (t + step) / 1000, as_of, r)
            rows.append(row)
        t += step
    return rows


def peer5_csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Documented CSV: quoted header, quoted strings, bare numbers, \\n line ends."""

    def cell(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace('"', '""') + '"'
        if v is None:
            return ""
        return json.dumps(v)

    lines = [",".join(cell(c) for c in columns)]
    lines.extend(",".join(cell(row.get(c)) for c in columns) for row in rows)
    return "\n".join(lines) + "\n"


# -- API: POST /v1/export ----------------------------------------------------------------------------
HOUR_MS = 3_600_000
#: interval -> (max to-from in ms or None, max age of `from` in ms or None)
RANGE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "1m": (6 * HOUR_MS, 7 * DAY_MS),
    "5m": (6 * HOUR_MS, 7 * DAY_MS),
    "10m": (7 * DAY_MS, 14 * DAY_MS),
    "30m": (7 * DAY_MS, 14 * DAY_MS),
    "1h": (None, 14 * DAY_MS),
    "3h": (None, 14 * DAY_MS),
    "12h": (None, 14 * DAY_MS),
    "1d": (None, None),
    "7d": (None, None),
    "14d": (None, None),
}
FILTER_KEYS = tuple(PEER5_DIMENSION_VALUES)


def _bad(message: str) -> ErrorResponse:
    return ErrorResponse(400, {"error": True, "message": message})


def new_state() -> dict[str, Any]:
    return {"sent": []}


def guard(sbx: SandboxServer, req: Request) -> None:
    """The per-minute limit (number not documented): over it, this and every later request get a 429
    while the limit stays crossed, since rejected requests count too. No Retry-After is sent."""
    limit = sbx.config.peer5_rate_limit
    if limit is None:
        return
    now = time.time()
    with sbx.lock:
        sent: list[float] = sbx.state["peer5"]["sent"]
        sent[:] = [moment for moment in sent if now - moment < sbx.config.peer5_rate_window]
        sent.append(now)
        crossed = len(sent) > limit
    if crossed:
        raise ErrorResponse(429, {"error": True, "message": "Too many requests, please slow down"})


def _timestamp(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise _bad(f"'{name}' is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(f"'{name}' must be a number (UTC epoch milliseconds)")
    if value != int(value) or value < 0:
        raise _bad(f"'{name}' must be a non-negative integer number of epoch milliseconds")
    return int(value)


def _known_once(names: list[Any], kind: str, known: Sequence[str]) -> None:
    """Every one of ``names`` (the body's metrics or dimensions) is known, and none comes twice."""
    for name in names:
        if name not in known:
            raise _bad(f"Unknown {kind} {name!r}; available: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise _bad(f"'{kind}s' must not contain duplicates")


def validate(body: Any, now_ms: int) -> dict[str, Any]:
    """Validate an export body exactly per the docs; returns the normalised query."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    interval = body.get("interval")
    if interval is None:
        raise _bad("'interval' is required")
    if interval not in PEER5_INTERVALS_MS:
        raise _bad(f"'interval' must be one of {', '.join(PEER5_INTERVALS_MS)}")
    frm = _timestamp(body, "from")
    to = _timestamp(body, "to")
    step = PEER5_INTERVALS_MS[interval]
    for name, value in (("from", frm), ("to", to)):
        if value % step:
            raise _bad(f"'{name}' must be rounded to the requested interval ({interval})")
    if frm >= to:
        raise _bad("'from' must be before 'to'")
    max_span, max_age = RANGE_LIMITS[interval]
    if max_span is not None and to - frm > max_span:
        raise _bad(f"Interval {interval} is limited to a query range of up to {max_span // HOUR_MS} hours")
    if max_age is not None and frm < now_ms - max_age:
        raise _bad(f"Interval {interval} is limited to queries within the last {max_age // DAY_MS} days")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _bad("'metrics' is required and must be a non-empty array")
    _known_once(metrics, "metric", PEER5_METRICS)
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise _bad("'filters' must be an object")
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise _bad(f"Unknown filter key {key!r}; available: {', '.join(FILTER_KEYS)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _bad(f"Filter {key!r} must be an array of strings")
    dimensions = body.get("dimensions") or []
    if not isinstance(dimensions, list):
        raise _bad("'dimensions' must be an array")
    if len(dimensions) > 2:
        raise _bad("Dimensions are limited to up to 2 at any given query")
    _known_once(dimensions, "dimension", FILTER_KEYS)
    return {
        "from": frm,
        "to": to,
        "interval": interval,
        "metrics": metrics,
        "filters": filters,
        "dimensions": dimensions,
    }


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "POST":
        raise ErrorResponse(405, {"error": True, "message": "Method not allowed"})
    if req.headers.get("X-Auth-Token") != CREDENTIALS["peer5"]["token"]:
        raise ErrorResponse(401, {"error": True, "message": "Invalid auth token"})
    fmt = req.q("format") or "json"
    if fmt not in ("json", "csv"):
        raise _bad("'format' must be 'json' or 'csv'")
    try:
        body = req.json()
    except ValueError:
        raise _bad("Request body must be valid JSON") from None
    q = validate(body, int(sbx.config.clock() * 1000))
    # Inclusive reading of `to`: the bucket starting at `to` comes back as well.
    served_to = q["to"] + PEER5_INTERVALS_MS[q["interval"]] if sbx.config.peer5_to_inclusive else q["to"]
    as_of = sbx.config.clock() if late_on(sbx.config, "peer5") else None
    rows = peer5_rows(
        sbx.config, q["from"], served_to, q["interval"], q["metrics"], q["filters"], q["dimensions"], as_of
    )
    if fmt == "json":
        return json_response(200, {"error": False, "data": rows})
    columns = ["timestamp", *q["dimensions"], *q["metrics"]]
    return Response(200, peer5_csv(rows, columns).encode(), {"Content-Type": "text/csv; charset=utf-8"})
