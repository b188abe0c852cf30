"""Runtime configuration of the sandbox: every knob in one dataclass that can be changed live.

Each API module's docstring says which of its fields answer which open question of a service.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

APIS: tuple[str, ...] = ("browsee", "braze", "openpanel", "peer5", "sealmetrics")
BRAZE_TIME_FORMATS: tuple[str, ...] = ("z", "offset", "naive")
#: Browsee readings of a session still running: listed with its final fields (``final``), listed
#: with duration/activeTime/pageCount growing until it ends (``growing``), or listed once ended.
BROWSEE_RUNNING: tuple[str, ...] = ("final", "growing", "hidden")

#: Fault kinds understood by the injector; the last three only apply to Sealmetrics
#: (``create_then_drop``: POST /exports creates the job, then the connection drops unanswered).
FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "429",
    "drop",
    "truncate",
    "slow",
    "job_fail",
    "download_cut",
    "create_then_drop",
)

#: Rows per day per Sealmetrics export type. ``pages`` crosses the 10,000-row background threshold
#: from 4 days on; ``microconversions`` always does (12,000/day); the dimension types stay small.
DEFAULT_SEALMETRICS_ROWS_PER_DAY: dict[str, int] = {
    "pages": 3000,
    "sources": 40,
    "mediums": 12,
    "campaigns": 60,
    "terms": 200,
    "countries": 50,
    "devices": 3,
    "browsers": 8,
    "os": 7,
    "conversions": 400,
    "microconversions": 12000,
    "time_series": 1,
    "landing_pages": 1200,
}


@dataclass
class FaultConfig:
    """Seeded fault injection: a fraction ``rate`` of API requests fail with one of ``kinds``."""

    rate: float = 0.0
    seed: int = 1
    kinds: list[str] = field(default_factory=lambda: list(FAULT_KINDS))
    slow_seconds: float = 5.0

    def validate(self) -> None:
        """Reject nonsense early so a typo in a test does not silently disable faults."""
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"faults.rate must be within [0, 1], got {self.rate!r}")
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        if float(self.slow_seconds) < 0:
            raise ValueError("faults.slow_seconds must be >= 0")


@dataclass
class SandboxConfig:
    """All behaviour knobs of the sandbox; the server reads it on every request, so edits apply live."""

    seed: int = 42
    latency_ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(APIS, 0))
    browsee_sessions_per_day: int = 480
    openpanel_events_per_day: int = 2400
    openpanel_rate_limit: int | None = 100
    openpanel_rate_window: float = 10.0
    #: Live traffic: events per second arriving (createdAt = arrival) from the moment it is set.
    openpanel_live_events_per_second: float = 0.0
    #: The organization's time zone: charts read naive dates in it and bucket by it.
    openpanel_timezone: str = "UTC"
    #: The organization's subscriptionChartEndDate (epoch seconds): charts end there at the latest.
    openpanel_subscription_chart_end: float | None = None
    sealmetrics_job_delay: float = 3.0
    sealmetrics_link_ttl: float = 86400.0
    sealmetrics_max_concurrent: int = 3
    sealmetrics_max_rows: int | None = 1_000_000
    sealmetrics_rows_per_day: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_SEALMETRICS_ROWS_PER_DAY)
    )
    sealmetrics_row_padding: int = 0
    sealmetrics_fail_jobs: int = 0
    #: Requests per minute (Scale plan: 480); X-RateLimit-* report it, over it is a 429.
    sealmetrics_rate_limit: int | None = 480
    sealmetrics_rate_window: float = 60.0
    #: How the concurrent-export cap answers (undocumented): quota_exceeded | rate_limit_exceeded | conflict.
    sealmetrics_cap_response: str = "quota_exceeded"
    #: Whether that answer carries Retry-After (the docs say 429s do; a 409 may not).
    sealmetrics_cap_retry_after: bool = True
    #: Creates allowed before 429 quota_exceeded (a plan quota); None: unlimited.
    sealmetrics_export_quota: int | None = None
    #: Retry-After sent with quota_exceeded; None: none (the docs do not say).
    sealmetrics_quota_retry_after: int | None = None
    #: Content-Type of a json stream: application/json (an array) or application/x-ndjson.
    sealmetrics_stream_json_type: str = "application/json"
    faults: FaultConfig = field(default_factory=FaultConfig)
    now: float | None = None
    # -- open readings: each switch serves one plausible reading of what a doc page leaves open,
    # so tests can run every export under each. Defaults are the sandbox's behaviour before them.
    #: Browsee: ``end`` also admits sessions starting within its second (inclusive reading).
    browsee_end_inclusive: bool = False
    #: Browsee: sessions carry the undocumented ``sessionId``.
    browsee_session_id: bool = True
    #: Browsee: optional fields without a value are absent instead of null (name/email/tags/utm_*).
    browsee_sparse: bool = False
    #: Braze: hourly ``time`` as UTC with ``Z``, with the company's offset, or naive local time.
    braze_time_format: str = "z"
    #: Braze: the company time zone days (and hours) follow.
    braze_timezone: str = "UTC"
    #: Braze: requests per ``braze_rate_window`` seconds of the shared pool (None: no pool, no headers).
    braze_rate_limit: int | None = None
    braze_rate_window: float = 3600.0
    #: Peer5: the bucket starting at ``to`` is served too (inclusive reading).
    peer5_to_inclusive: bool = False
    #: Peer5: some rows lack a metric (absent, not null or 0).
    peer5_sparse: bool = False
    #: Peer5: requests per ``peer5_rate_window`` seconds; over it every request gets a 429.
    peer5_rate_limit: int | None = None
    peer5_rate_window: float = 60.0
    # -- late data (the past keeps changing; see late.py): all off by default.
    #: Per API, the share of its data that arrives late (items, or the late part of each count).
    late_share: dict[str, float] = field(default_factory=lambda: dict.fromkeys(APIS, 0.0))
    #: Per API, seconds: a late item arrives at its own time (a count: its bucket's end) plus a
    #: seeded delay in (0, horizon]; from then on it is final.
    late_horizon: dict[str, float] = field(default_factory=lambda: dict.fromkeys(APIS, 3600.0))
    #: OpenPanel: every event becomes visible only from createdAt + this lag (the 10 s buffer flush).
    openpanel_flush_lag: float = 0.0
    #: Browsee: how a session still running at the clock is served (one of ``BROWSEE_RUNNING``).
    browsee_running: str = "final"
    #: OpenPanel: share of events whose location did not resolve (``country`` is two NUL characters).
    openpanel_unknown_country_share: float = 0.0
    #: OpenPanel: events whose slot holds a whole hour (else minute) sit exactly on it (chart ends).
    openpanel_boundary_events: bool = False

    def __post_init__(self) -> None:
        """Per-API late dicts given in part (``late_share={"braze": 0.3}``) keep the others' defaults."""
        self.late_share = _late_dict("late_share", dict.fromkeys(APIS, 0.0), self.late_share)
        self.late_horizon = _late_dict("late_horizon", dict.fromkeys(APIS, 3600.0), self.late_horizon)

    def clock(self) -> float:
        """Wall-clock seconds as the APIs see it (``now`` lets tests pin recency limits)."""
        return time.time() if self.now is None else float(self.now)

    def update(self, data: dict[str, Any]) -> None:
        """Merge a JSON dict into this config (dict fields are merged key by key, not replaced)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {unknown}")
        for key, value in data.items():
            if key == "faults":
                if isinstance(value, FaultConfig):
                    new_faults = value
                else:
                    if not isinstance(value, dict):
                        raise ValueError("faults must be an object")
                    fault_names = {f.name for f in dataclasses.fields(FaultConfig)}
                    bad = sorted(set(value) - fault_names)
                    if bad:
                        raise ValueError(f"unknown faults fields: {bad}")
                    new_faults = dataclasses.replace(self.faults, **value)
                    new_faults.kinds = list(new_faults.kinds)
                new_faults.validate()
                self.faults = new_faults
            elif key in ("late_share", "late_horizon"):
                setattr(self, key, _late_dict(key, getattr(self, key), value))
            elif key in ("latency_ms", "sealmetrics_rows_per_day"):
                if not isinstance(value, dict):
                    raise ValueError(f"{key} must be an object")
                merged = dict(getattr(self, key))
                merged.update({str(k): int(v) for k, v in value.items()})
                if key == "latency_ms" and set(merged) - set(APIS):
                    raise ValueError(f"latency_ms keys must be among {list(APIS)}")
                setattr(self, key, merged)
            else:
                if key == "braze_time_format" and value not in BRAZE_TIME_FORMATS:
                    raise ValueError(f"braze_time_format must be one of {list(BRAZE_TIME_FORMATS)}")
                if key == "browsee_running" and value not in BROWSEE_RUNNING:
                    raise ValueError(f"browsee_running must be one of {list(BROWSEE_RUNNING)}")
                if key == "openpanel_flush_lag" and float(value) < 0:
                    raise ValueError("openpanel_flush_lag must be >= 0 seconds")
                if key == "braze_timezone":
                    ZoneInfo(value)  # an unknown zone fails here, not inside a request
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (served by ``GET /_sandbox/config``)."""
        return dataclasses.asdict(self)


def _late_dict(key: str, current: dict[str, float], value: Any) -> dict[str, float]:
    """``current`` merged with ``value`` key by key, checked: a typo must not silently mean 'on time'."""
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    merged = dict(current)
    merged.update({str(k): float(v) for k, v in value.items()})
    if set(merged) - set(APIS):
        raise ValueError(f"{key} keys must be among {list(APIS)}")
    for api, number in merged.items():
        if key == "late_share" and not 0.0 <= number <= 1.0:
            raise ValueError(f"late_share[{api!r}] must be within [0, 1], got {number!r}")
        if key == "late_horizon" and not number > 0:
            raise ValueError(f"late_horizon[{api!r}] must be > 0 seconds, got {number!r}")
    return merged
