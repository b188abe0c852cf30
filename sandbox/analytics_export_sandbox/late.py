"""Late data: when an item becomes visible, and how far a count has grown, at a sandbox time.

No real service's window is final when it closes (real-services.md, "When is an analytics window
final?"): OpenPanel flushes every 10 s and takes back-dated events, Braze counts come from a
pipeline, Peer5/Sealmetrics aggregates settle at an undocumented time, Browsee sessions may be
listed while running. ``SandboxConfig.late_share``/``late_horizon`` (per API) serve that: a late
item arrives at its own time plus a seeded delay in (0, horizon]; a count's late part arrives over
(bucket end, bucket end + horizon]. Everything is a pure function of the seed and the item, so the
truth functions can answer "as of" any sandbox time and say what is final.
"""

from __future__ import annotations

from typing import TypeVar

from .config import SandboxConfig
from .synthetic import mix

_SALT = 0x6C617465  # "late": keeps these draws independent of the item's other seeded fields
_SPAN = 1 << 32

Number = TypeVar("Number", int, float)


def late_on(config: SandboxConfig, api: str) -> bool:
    """Whether any of ``api``'s data arrives late (off: the API serves its final data at once)."""
    return float(config.late_share.get(api, 0.0)) > 0.0


def late_delay(config: SandboxConfig, api: str, r: int) -> float:
    """Seconds item ``r`` (its own 64-bit seeded hash) arrives after its time: 0 if on time."""
    share = float(config.late_share.get(api, 0.0))
    if share <= 0.0:
        return 0.0
    draw = mix(r ^ _SALT)
    if (draw & (_SPAN - 1)) >= share * _SPAN:
        return 0.0
    return float(config.late_horizon[api]) * ((draw >> 32) + 1) / _SPAN


def grown(
    config: SandboxConfig, api: str, value: Number, start: float, end: float, as_of: float | None, r: int
) -> Number:
    """What a count of bucket [start, end) shows at ``as_of`` (None: the final ``value``).

    The on-time part grows as the bucket passes; the late part (``late_share``) arrives along a
    seeded curve over (end, end + horizon], so counts only ever grow and are final at the horizon.
    """
    if as_of is None or not late_on(config, api):
        return value
    horizon = float(config.late_horizon[api])
    if as_of >= end + horizon:
        return value
    passed = min(1.0, max(0.0, (as_of - start) / (end - start))) if end > start else float(as_of >= end)
    arrived = min(1.0, max(0.0, (as_of - end) / horizon)) ** (0.5 + mix(r ^ _SALT) % 2500 / 1000)
    share = float(config.late_share[api])
    if isinstance(value, int):
        late = round(value * share)
        return int((value - late) * passed) + int(late * arrived)
    late_part = value * share
    return round((value - late_part) * passed + late_part * arrived, 2)
