"""Fake Braze GET /sessions/data_series: session counts per hour or day and the shared rate pool.

Counts are a pure function of ``seed``, the hour and ``app_id``/``segment_id``; a day is the sum
of its hours, so both units agree. :func:`braze_window` is the truth of an export window.

Open questions of real-services.md (Braze) and their ``SandboxConfig`` switches:

- which zone an hourly ``time`` is in, and in what form: ``braze_time_format`` (UTC with ``Z``,
  the company's offset, or naive local time);
- whether days (and hours) follow the company time zone: ``braze_timezone``;
- the 250,000/hour pool shared with other endpoints: ``braze_rate_limit``/``braze_rate_window``
  (429 with ``X-RateLimit-*`` and no ``Retry-After``, as documented);
- when an hour stops changing (counts come from a pipeline): ``late_share["braze"]`` and
  ``late_horizon["braze"]`` make each hour grow until settled (late.py); a day, the sum of its
  hours, grows with them, so both units agree at any clock.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .late import grown, late_on
from .server import ErrorResponse, Request, Response, json_response
from .synthetic import stable_hash

if TYPE_CHECKING:
    from .server import SandboxServer

# -- data: session counts ----------------------------------------------------------------------------
#: Relative traffic per UTC hour (peaks in the afternoon).
_DIURNAL = (3, 2, 2, 2, 2, 3, 5, 7, 9, 10, 11, 12, 12, 12, 12, 13, 13, 12, 11, 10, 8, 6, 5, 4)


def _braze_hour(seed: int, hour_start: datetime, app_id: str | None, segment_id: str | None) -> int:
    epoch_h = int(hour_start.timestamp()) // 3600
    r = stable_hash("braze", seed, epoch_h, app_id or "", segment_id or "")
    scale = 100 if not app_id else 40 + stable_hash("braze-app", app_id) % 40
    if segment_id:
        scale = max(1, scale * (10 + stable_hash("braze-seg", segment_id) % 40) // 100)
    weekend = 0.7 if hour_start.weekday() >= 5 else 1.0
    return int(_DIURNAL[hour_start.hour] * scale * weekend * (0.8 + (r % 400) / 1000))


def braze_bucket(config: SandboxConfig, unit: str, moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the bucket holding ``moment``: hours and days of the company time zone."""
    tz = ZoneInfo(config.braze_timezone)
    local = moment.astimezone(tz)
    if unit == "hour":
        first = local.replace(minute=0, second=0, microsecond=0).astimezone(timezone.utc)
        return first, first + timedelta(hours=1)  # absolute hours: a DST change has no 2-hour bucket
    if unit == "day":
        day = local.date()
        first = datetime.combine(day, datetime.min.time(), tz)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
        return first.astimezone(timezone.utc), end.astimezone(timezone.utc)
    raise ValueError(f"unknown unit {unit!r}")


def _braze_hour_as_of(
    config: SandboxConfig,
    hour_start: datetime,
    app_id: str | None,
    segment_id: str | None,
    as_of: float | None,
) -> int:
    """One hour's count as the pipeline shows it at ``as_of`` (None: final)."""
    final = _braze_hour(config.seed, hour_start, app_id, segment_id)
    if as_of is None or not late_on(config, "braze"):
        return final
    start = hour_start.timestamp()
    r = stable_hash("braze-late", config.seed, int(start) // 3600, app_id or "", segment_id or "")
    return grown(config, "braze", final, start, start + 3600, as_of, r)


def braze_sessions(
    config: SandboxConfig,
    unit: str,
    bucket_start: datetime,
    app_id: str | None,
    segment_id: str | None,
    as_of: float | None = None,
) -> int:
    """Sessions in one bucket; a day is exactly the sum of its hours so both units agree."""
    if bucket_start.tzinfo is None:
        bucket_start = bucket_start.replace(tzinfo=timezone.utc)
    first, end = braze_bucket(config, unit, bucket_start)
    hours = int((end - first) // timedelta(hours=1))
    return sum(
        _braze_hour_as_of(config, first + timedelta(hours=h), app_id, segment_id, as_of) for h in range(hours)
    )


def braze_label(config: SandboxConfig, unit: str, bucket_start: datetime) -> str:
    """``time`` as served: a company-zone date for days; for hours per ``braze_time_format``."""
    local = bucket_start.astimezone(ZoneInfo(config.braze_timezone))
    if unit == "day":
        return local.date().isoformat()
    if config.braze_time_format == "offset":
        return local.isoformat(timespec="seconds")
    if config.braze_time_format == "naive":
        return local.replace(tzinfo=None).isoformat(timespec="seconds")
    return bucket_start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def braze_series(
    config: SandboxConfig,
    length: int,
    unit: str,
    ending_at: datetime,
    app_id: str | None = None,
    segment_id: str | None = None,
    as_of: float | None = None,
) -> list[dict[str, Any]]:
    """The ``length`` buckets ending with the one containing ``ending_at``, oldest first
    (counts as visible at sandbox time ``as_of``; None: final)."""
    starts = [braze_bucket(config, unit, ending_at)[0]]
    while len(starts) < length:
        starts.append(braze_bucket(config, unit, starts[-1] - timedelta(microseconds=1))[0])
    return [
        {
            "time": braze_label(config, unit, b),
            "sessions": braze_sessions(config, unit, b, app_id, segment_id, as_of),
        }
        for b in reversed(starts)
    ]


def braze_window(
    config: SandboxConfig,
    start: datetime,
    end: datetime,
    unit: str,
    app_id: str | None = None,
    segment_id: str | None = None,
    as_of: float | None = None,
) -> list[dict[str, Any]]:
    """The truth of a window: every bucket starting in [start, end), labelled as served, with
    ``bucket_start``, the bucket's UTC start (``...Z``) that a client must recover from ``time``.
    Counts are final unless ``as_of`` (sandbox epoch seconds) asks what was visible then."""
    out = []
    bucket = braze_bucket(config, unit, start)
    if bucket[0] < start:
        bucket = braze_bucket(config, unit, bucket[1])
    while bucket[0] < end:
        out.append(
            {
                "time": braze_label(config, unit, bucket[0]),
                "sessions": braze_sessions(config, unit, bucket[0], app_id, segment_id, as_of),
                "bucket_start": bucket[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        bucket = braze_bucket(config, unit, bucket[1])
    return out


# -- API: GET /sessions/data_series ------------------------------------------------------------------
_OFFSET_RE = re.compile(r"([+-])(\d{1,2}):?(\d{2})$")


def new_state() -> dict[str, Any]:
    return {"window": None, "used": 0}


def _pool(sbx: SandboxServer) -> tuple[int, int, int]:
    """(limit, used, reset epoch seconds) of the current fixed window of the shared request pool."""
    window = float(sbx.config.braze_rate_window)
    index = math.floor(time.time() / window)
    state = sbx.state["braze"]
    if state["window"] != index:
        state["window"], state["used"] = index, 0
    return int(sbx.config.braze_rate_limit or 0), state["used"], math.ceil((index + 1) * window)


def guard(sbx: SandboxServer, req: Request) -> None:
    """Braze's shared hourly pool: over it, 429 with X-RateLimit-* headers and no Retry-After."""
    if sbx.config.braze_rate_limit is None:
        return
    with sbx.lock:
        limit, used, _ = _pool(sbx)
        sbx.state["braze"]["used"] = used + 1
    if used >= limit:
        raise ErrorResponse(429, {"message": "API rate limit exceeded", "errors": []})


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """X-RateLimit-Limit/-Remaining/-Reset (UTC epoch seconds) on every answer, as Braze documents."""
    if sbx.config.braze_rate_limit is None:
        return {}
    with sbx.lock:
        limit, used, reset = _pool(sbx)
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - used)),
        "X-RateLimit-Reset": str(reset),
    }


def parse_ending_at(raw: str) -> datetime:
    """ISO-8601 as Braze accepts it, including 'Z' and short offsets like '-5:00' (naive = UTC)."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    m = _OFFSET_RE.search(text) if "T" in text else None
    if m:
        text = text[: m.start()] + f"{m.group(1)}{int(m.group(2)):02d}:{m.group(3)}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "GET":
        raise ErrorResponse(405, {"message": "Method not allowed"})
    auth = req.headers.get("Authorization") or ""
    if not auth.startswith("Bearer ") or auth[7:].strip() != CREDENTIALS["braze"]["api_key"]:
        raise ErrorResponse(401, {"message": "Invalid API key"})
    raw_length = req.q("length")
    if raw_length is None:
        raise ErrorResponse(400, {"message": "Missing required parameter 'length'"})
    try:
        length = int(raw_length)
    except ValueError:
        raise ErrorResponse(400, {"message": "'length' must be an integer between 1 and 100"}) from None
    if not 1 <= length <= 100:
        raise ErrorResponse(400, {"message": "'length' must be an integer between 1 and 100"})
    unit = req.q("unit") or "day"
    if unit not in ("day", "hour"):
        raise ErrorResponse(400, {"message": "'unit' must be either 'day' or 'hour'"})
    raw_end = req.q("ending_at")
    if raw_end:
        try:
            ending_at = parse_ending_at(raw_end)
        except ValueError:
            raise ErrorResponse(400, {"message": "'ending_at' must be an ISO-8601 datetime"}) from None
    else:
        ending_at = datetime.fromtimestamp(sbx.config.clock(), tz=timezone.utc)
    as_of = sbx.config.clock() if late_on(sbx.config, "braze") else None
    data = braze_series(
        sbx.config, length, unit, ending_at, req.q("app_id") or None, req.q("segment_id") or None, as_of
    )
    return json_response(200, {"message": "success", "data": data})
