"""Pure, deterministic data generators for every sandbox API.

Everything here is a function of the config's seed/volume knobs and the request window only, so tests
can compute exactly what the server will serve and compare row by row. Pages are computed by index
arithmetic (O(page)); only filtered listings keep a small per-day cache of matching indices.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from .config import SandboxConfig

_M64 = (1 << 64) - 1
DAY_S = 86_400
DAY_MS = 86_400_000
UTC = timezone.utc


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread hash of one integer (per-row randomness)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _h(*parts: object) -> int:
    """Stable 64-bit hash of arbitrary printable parts (Python's hash() is salted per process)."""
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _slot_ms(day_start_ms: int, n: int, i: int, r: int) -> int:
    """Timestamp of item ``i`` of ``n`` spread over a day: strictly ordered, jittered inside its slot."""
    lo = DAY_MS * i // n
    hi = DAY_MS * (i + 1) // n
    return day_start_ms + lo + (r % (hi - lo) if hi > lo else 0)


def _iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and Z, the format OpenPanel uses."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _days(start: date, end: date) -> Iterator[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


# --------------------------------------------------------------------------------------------------
# Browsee
# --------------------------------------------------------------------------------------------------

BROWSEE_FIELDS: tuple[str, ...] = (
    "userId",
    "duration",
    "inactiveTime",
    "activeTime",
    "urls",
    "timestamp",
    "pageCount",
    "eventCount",
    "name",
    "email",
    "tags",
    "landingPage",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "browser",
    "os",
    "device",
    "isMobile",
    "ip",
    "city",
    "country",
    "domain",
    "referrer",
)
#: Sessions exist only from this date on (keeps ``start=0`` queries cheap, like a retention limit).
BROWSEE_DATA_START_S = 1_577_836_800  # 2020-01-01

_B_PAGES = (
    "/",
    "/pricing",
    "/products",
    "/products/shoes",
    "/products/bags",
    "/blog",
    "/cart",
    "/checkout",
    "/checkout/thank-you",
    "/about",
    "/contact",
    "/login",
)
_B_UTM = (
    ("google", "cpc", "spring_sale", "running shoes", "banner_a"),
    ("facebook", "social", "brand_awareness", None, "video_1"),
    ("newsletter", "email", "weekly_digest", None, None),
    ("bing", "cpc", "spring_sale", "leather bags", "text_b"),
)
_B_GEO = (
    ("New York", "United States"),
    ("Berlin", "Germany"),
    ("Tel Aviv", "Israel"),
    ("Sao Paulo", "Brazil"),
    ("Mumbai", "India"),
    ("London", "United Kingdom"),
)
_B_DEVICES = (
    ("Desktop", "Chrome", "Windows"),
    ("Desktop", "Safari", "Mac OS"),
    ("Mobile", "Chrome", "Android"),
    ("Mobile", "Safari", "iOS"),
    ("Tablet", "Safari", "iOS"),
    ("Desktop", "Firefox", "Linux"),
)
_B_REFERRERS = ("", "google.com", "facebook.com", "t.co", "news.ycombinator.com")
_B_FIRST = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken")
_B_LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson")
_B_TAGS = ("vip", "trial", "newsletter", "beta")


def _browsee_segment_checkout(s: dict[str, Any]) -> bool:
    return any(u.startswith("/checkout") for u in s["urls"])


def _browsee_segment_mobile(s: dict[str, Any]) -> bool:
    return bool(s["isMobile"])


def _browsee_segment_identified(s: dict[str, Any]) -> bool:
    return s["userId"] is not None


BROWSEE_SEGMENTS = {
    "seg-checkout": _browsee_segment_checkout,
    "seg-mobile": _browsee_segment_mobile,
    "seg-identified": _browsee_segment_identified,
}


def _browsee_base(seed: int, day: int) -> int:
    return _h("browsee", seed, day)


def _browsee_ts(seed: int, n: int, day: int, i: int) -> int:
    base = _browsee_base(seed, day)
    return _slot_ms(day * DAY_MS, n, i, _mix(base + i))


def browsee_session(config: SandboxConfig, day: int, i: int) -> dict[str, Any]:
    """Session ``i`` of UTC day number ``day`` (days since epoch), with every documented field."""
    n = config.browsee_sessions_per_day
    base = _browsee_base(config.seed, day)
    rr = _mix(base + i)
    r = random.Random(rr)
    ts = _slot_ms(day * DAY_MS, n, i, rr)
    duration = r.randint(5_000, 1_800_000)
    inactive = r.randint(0, duration // 3)
    page_count = r.randint(1, 9)
    urls = [r.choice(_B_PAGES) for _ in range(page_count)]
    device, browser, os_name = r.choice(_B_DEVICES)
    city, country = r.choice(_B_GEO)
    identified = r.random() < 0.4
    uid = r.randrange(2000)
    first, last = _B_FIRST[uid % len(_B_FIRST)], _B_LAST[(uid // 8) % len(_B_LAST)]
    utm = r.choice(_B_UTM) if r.random() < 0.5 else (None, None, None, None, None)
    return {
        "sessionId": f"bs-{day}-{i:07d}-{rr & 0xFFFFFF:06x}",
        "userId": f"user-{uid}" if identified else None,
        "duration": duration,
        "inactiveTime": inactive,
        "activeTime": duration - inactive,
        "urls": urls,
        "timestamp": ts,
        "pageCount": page_count,
        "eventCount": page_count * r.randint(2, 15),
        "name": f"{first} {last}" if identified else None,
        "email": f"{first.lower()}.{last.lower()}{uid}@example.com" if identified else None,
        "tags": sorted(r.sample(_B_TAGS, r.randint(0, 2))) if identified else [],
        "landingPage": urls[0],
        "utm_source": utm[0],
        "utm_medium": utm[1],
        "utm_campaign": utm[2],
        "utm_term": utm[3],
        "utm_content": utm[4],
        "browser": browser,
        "os": os_name,
        "device": device,
        "isMobile": device == "Mobile",
        "ip": f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
        "city": city,
        "country": country,
        "domain": "shop.example.com",
        "referrer": r.choice(_B_REFERRERS),
    }


@lru_cache(maxsize=512)
def _browsee_segment_day(seed: int, n: int, day: int, segment_id: str) -> tuple[int, ...]:
    """Indices of one day's sessions in a segment (the only O(day) step; cached)."""
    cfg = SandboxConfig(seed=seed, browsee_sessions_per_day=n)
    pred = BROWSEE_SEGMENTS[segment_id]
    return tuple(i for i in range(n) if pred(browsee_session(cfg, day, i)))


def _first_at_or_after(n: int, ts_of: Any, target_ms: int) -> int:
    """Binary search over a monotone index->timestamp function."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if ts_of(mid) < target_ms:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _browsee_day_indices(
    config: SandboxConfig, day: int, start_ms: int, end_ms: int, segment_id: str | None
) -> Sequence[int]:
    n = config.browsee_sessions_per_day
    if n <= 0:
        return ()
    if segment_id is None:

        def ts_of(i: int) -> int:
            return _browsee_ts(config.seed, n, day, i)

        lo = _first_at_or_after(n, ts_of, start_ms)
        hi = _first_at_or_after(n, ts_of, end_ms)
        return range(lo, hi)
    idx = _browsee_segment_day(config.seed, n, day, segment_id)
    tss = [_browsee_ts(config.seed, n, day, i) for i in idx]
    return idx[bisect_left(tss, start_ms) : bisect_left(tss, end_ms)]


def _browsee_windows(
    config: SandboxConfig, start_s: int, end_s: int, segment_id: str | None
) -> Iterator[tuple[int, Sequence[int]]]:
    if segment_id is not None and segment_id not in BROWSEE_SEGMENTS:
        raise KeyError(segment_id)
    start_s = max(int(start_s), BROWSEE_DATA_START_S)
    end_s = int(end_s)
    if end_s <= start_s:
        return
    for day in range(start_s // DAY_S, (end_s - 1) // DAY_S + 1):
        yield day, _browsee_day_indices(config, day, start_s * 1000, end_s * 1000, segment_id)


def _select(session: dict[str, Any], fields: Iterable[str] | None) -> dict[str, Any]:
    if fields is None:
        return session
    wanted = set(fields)
    return {k: v for k, v in session.items() if k == "sessionId" or k in wanted}


def browsee_sessions(
    config: SandboxConfig,
    start_s: int,
    end_s: int,
    segment_id: str | None = None,
    fields: Iterable[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """All sessions with start_s <= timestamp/1000 < end_s, oldest first (KeyError: unknown segment)."""
    fields = list(fields) if fields is not None else None
    for day, idx in _browsee_windows(config, start_s, end_s, segment_id):
        for i in idx:
            yield _select(browsee_session(config, day, i), fields)


def browsee_page(
    config: SandboxConfig,
    start_s: int,
    end_s: int,
    segment_id: str | None,
    fields: Iterable[str] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, sessions[offset:offset+limit]) computed without generating skipped sessions."""
    fields = list(fields) if fields is not None else None
    total = 0
    out: list[dict[str, Any]] = []
    for day, idx in _browsee_windows(config, start_s, end_s, segment_id):
        lo = max(0, offset - total)
        take = limit - len(out)
        if take > 0 and lo < len(idx):
            out.extend(_select(browsee_session(config, day, i), fields) for i in idx[lo : lo + take])
        total += len(idx)
    return total, out


# --------------------------------------------------------------------------------------------------
# Braze
# --------------------------------------------------------------------------------------------------

#: Relative traffic per UTC hour (peaks in the afternoon).
_DIURNAL = (3, 2, 2, 2, 2, 3, 5, 7, 9, 10, 11, 12, 12, 12, 12, 13, 13, 12, 11, 10, 8, 6, 5, 4)


def _braze_hour(seed: int, hour_start: datetime, app_id: str | None, segment_id: str | None) -> int:
    epoch_h = int(hour_start.timestamp()) // 3600
    r = _h("braze", seed, epoch_h, app_id or "", segment_id or "")
    scale = 100 if not app_id else 40 + _h("braze-app", app_id) % 40
    if segment_id:
        scale = max(1, scale * (10 + _h("braze-seg", segment_id) % 40) // 100)
    weekend = 0.7 if hour_start.weekday() >= 5 else 1.0
    return int(_DIURNAL[hour_start.hour] * scale * weekend * (0.8 + (r % 400) / 1000))


def braze_sessions(
    config: SandboxConfig, unit: str, bucket_start: datetime, app_id: str | None, segment_id: str | None
) -> int:
    """Sessions in one bucket; a day is exactly the sum of its 24 hours so both units agree."""
    if bucket_start.tzinfo is None:
        bucket_start = bucket_start.replace(tzinfo=UTC)
    bucket_start = bucket_start.astimezone(UTC)
    if unit == "hour":
        return _braze_hour(
            config.seed, bucket_start.replace(minute=0, second=0, microsecond=0), app_id, segment_id
        )
    if unit == "day":
        day0 = bucket_start.replace(hour=0, minute=0, second=0, microsecond=0)
        return sum(_braze_hour(config.seed, day0 + timedelta(hours=h), app_id, segment_id) for h in range(24))
    raise ValueError(f"unknown unit {unit!r}")


def braze_series(
    config: SandboxConfig,
    length: int,
    unit: str,
    ending_at: datetime,
    app_id: str | None = None,
    segment_id: str | None = None,
) -> list[dict[str, Any]]:
    """The ``length`` buckets ending with the one containing ``ending_at`` (UTC), oldest first."""
    end = ending_at.astimezone(UTC)
    if unit == "day":
        last = end.replace(hour=0, minute=0, second=0, microsecond=0)
        step = timedelta(days=1)
    else:
        last = end.replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
    out = []
    for k in range(length - 1, -1, -1):
        b = last - k * step
        label = b.strftime("%Y-%m-%d") if unit == "day" else b.strftime("%Y-%m-%dT%H:00:00Z")
        out.append({"time": label, "sessions": braze_sessions(config, unit, b, app_id, segment_id)})
    return out


# --------------------------------------------------------------------------------------------------
# OpenPanel
# --------------------------------------------------------------------------------------------------

OPENPANEL_PROJECTS: dict[str, float] = {"proj-web": 1.0, "proj-app": 0.5, "proj-shop": 0.5, "proj-docs": 0.5}
#: (event name, weight out of 100)
_OP_EVENTS = (
    ("screen_view", 50),
    ("button_click", 20),
    ("session_start", 8),
    ("session_end", 8),
    ("add_to_cart", 6),
    ("purchase", 4),
    ("sign_up", 4),
)
_OP_TABLE = tuple(itertools.chain.from_iterable([n] * w for n, w in _OP_EVENTS))
OPENPANEL_EVENT_NAMES = tuple(n for n, _ in _OP_EVENTS)
_OP_META = {
    "screen_view": ("Page view tracking", False),
    "button_click": ("Button click tracking", False),
    "session_start": ("Session started", False),
    "session_end": ("Session ended", False),
    "add_to_cart": ("Product added to cart", False),
    "purchase": ("Completed purchase", True),
    "sign_up": ("Account created", True),
}
_OP_PATHS = (
    ("/", "Home"),
    ("/dashboard", "Dashboard"),
    ("/pricing", "Pricing"),
    ("/docs", "Docs"),
    ("/blog", "Blog"),
    ("/settings", "Settings"),
    ("/checkout", "Checkout"),
)
_OP_GEO = (
    ("United States", "New York", "New York"),
    ("United States", "California", "San Francisco"),
    ("Canada", "Ontario", "Toronto"),
    ("Germany", "Berlin", "Berlin"),
    ("Israel", "Tel Aviv", "Tel Aviv"),
    ("Brazil", "Sao Paulo", "Sao Paulo"),
)
_OP_DEVICES = (
    ("Desktop", "macOS", "Chrome"),
    ("Desktop", "Windows", "Edge"),
    ("Desktop", "Windows", "Chrome"),
    ("Mobile", "iOS", "Safari"),
    ("Mobile", "Android", "Chrome"),
    ("Tablet", "iOS", "Safari"),
)
_OP_REFERRERS = ("", "google.com", "facebook.com", "news.ycombinator.com", "twitter.com")
OPENPANEL_BREAKDOWN_VALUES: dict[str, tuple[str, ...]] = {
    "country": ("United States", "Canada", "Germany", "Israel", "Brazil"),
    "region": ("New York", "California", "Ontario", "Berlin", "Tel Aviv", "Sao Paulo"),
    "city": ("New York", "San Francisco", "Toronto", "Berlin", "Tel Aviv", "Sao Paulo"),
    "device": ("Desktop", "Mobile", "Tablet"),
    "browser": ("Chrome", "Firefox", "Safari", "Edge"),
    "os": ("macOS", "Windows", "iOS", "Android"),
    "referrer": ("google.com", "facebook.com", "news.ycombinator.com", "twitter.com"),
    "path": tuple(p for p, _ in _OP_PATHS),
}
_OP_PROFILES = 1000


def openpanel_events_per_day(config: SandboxConfig, project_id: str) -> int:
    return int(config.openpanel_events_per_day * OPENPANEL_PROJECTS.get(project_id, 1.0))


def _op_base(seed: int, project_id: str, d: date) -> int:
    return _h("openpanel", seed, project_id, d.toordinal())


def _op_name_profile(base: int, i: int) -> tuple[str, int, str, str]:
    r = _mix(base + i)
    r2 = _mix(r)
    name = _OP_TABLE[r % 100]
    if r2 % 5:
        k = (r2 >> 8) % _OP_PROFILES
        device = f"device_{_mix(k) & 0xFFFFFF:06x}"
        return name, k, f"user_{k}", device
    device = f"device_{(r2 >> 8) & 0xFFFFFF:06x}"
    return name, -1, device, device


def openpanel_event(
    config: SandboxConfig, project_id: str, d: date, i: int, includes: Iterable[str] = ()
) -> dict[str, Any]:
    """Event ``i`` of day ``d`` (computed from its index alone, so any page is O(page))."""
    n = openpanel_events_per_day(config, project_id)
    base = _op_base(config.seed, project_id, d)
    r = _mix(base + i)
    r3 = _mix(r ^ 0x5DEECE66D)
    name, k, profile_id, device_id = _op_name_profile(base, i)
    day_ms = (d - date(1970, 1, 1)).days * DAY_MS
    ts = _slot_ms(day_ms, n, i, r)
    who = k if k >= 0 else int(device_id[7:], 16)
    country, region, city = _OP_GEO[_mix(who + 1) % len(_OP_GEO)]
    device, os_name, browser = _OP_DEVICES[_mix(who + 2) % len(_OP_DEVICES)]
    path, title = _OP_PATHS[r3 % len(_OP_PATHS)]
    origin = "https://example.com" if project_id != "proj-app" else "https://app.example.com"
    props: dict[str, Any] = {"path": path, "title": title, "url": origin + path}
    if name == "session_start":
        ref = _OP_REFERRERS[(r3 >> 8) % len(_OP_REFERRERS)]
        if ref:
            props["__referrer"] = "https://" + ref
    if name == "purchase":
        props["total"] = round(10 + (r3 >> 16) % 49000 / 100, 2)
    ev: dict[str, Any] = {
        "id": f"evt_{d.strftime('%Y%m%d')}{i:08d}{r3 & 0xFFFF:04x}",
        "name": name,
        "deviceId": device_id,
        "profileId": profile_id,
        "projectId": project_id,
        "sessionId": f"session_{_mix(who * 1_000_003 + ts // 3_600_000) & 0xFFFFFFFFFF:010x}",
        "properties": props,
        "createdAt": _iso_ms(ts),
        "country": country,
        "city": city,
        "region": region,
        "os": os_name,
        "browser": browser,
        "device": device,
        "duration": int((r3 >> 24) % 60_000) if name == "screen_view" else 0,
        "path": path,
        "origin": origin,
    }
    inc = set(includes)
    if "profile" in inc:
        if k >= 0:
            first, last = _B_FIRST[k % len(_B_FIRST)], _B_LAST[(k // 8) % len(_B_LAST)]
            ev["profile"] = {
                "id": profile_id,
                "email": f"{first.lower()}.{last.lower()}{k}@example.com",
                "firstName": first,
                "lastName": last,
                "isExternal": True,
                "createdAt": _iso_ms(1_704_067_200_000 + (_mix(k + 3) % (300 * DAY_MS))),
            }
        else:
            ev["profile"] = {
                "id": profile_id,
                "email": "",
                "firstName": "",
                "lastName": "",
                "isExternal": False,
                "createdAt": _iso_ms(ts),
            }
    if "meta" in inc:
        desc, conv = _OP_META[name]
        ev["meta"] = {"name": name, "description": desc, "conversion": conv}
    return ev


@lru_cache(maxsize=256)
def _op_filtered_day(
    seed: int, project_id: str, n: int, ordinal: int, events: tuple[str, ...] | None, profile_id: str | None
) -> tuple[int, ...]:
    base = _op_base(seed, project_id, date.fromordinal(ordinal))
    wanted = set(events) if events is not None else None
    out = []
    for i in range(n):
        name, _k, pid, _dev = _op_name_profile(base, i)
        if (wanted is None or name in wanted) and (profile_id is None or pid == profile_id):
            out.append(i)
    return tuple(out)


def _op_days(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None,
    profile_id: str | None,
) -> Iterator[tuple[date, Sequence[int]]]:
    n = openpanel_events_per_day(config, project_id)
    ev = tuple(sorted(set(events))) if events else None
    for d in _days(_parse_date(start_date), _parse_date(end_date)):
        if ev is None and profile_id is None:
            yield d, range(n)
        else:
            yield d, _op_filtered_day(config.seed, project_id, n, d.toordinal(), ev, profile_id)


def openpanel_events(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None = None,
    profile_id: str | None = None,
    includes: Iterable[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of the inclusive date range, ordered by createdAt ascending."""
    inc = tuple(includes or ())
    for d, idx in _op_days(config, project_id, start_date, end_date, events, profile_id):
        for i in idx:
            yield openpanel_event(config, project_id, d, i, inc)


def openpanel_page(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None,
    profile_id: str | None,
    includes: Iterable[str] | None,
    page: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(totalCount, events of 1-based ``page``) without generating the events before the page."""
    inc = tuple(includes or ())
    offset = (page - 1) * limit
    total = 0
    out: list[dict[str, Any]] = []
    for d, idx in _op_days(config, project_id, start_date, end_date, events, profile_id):
        lo = max(0, offset - total)
        take = limit - len(out)
        if take > 0 and lo < len(idx):
            out.extend(openpanel_event(config, project_id, d, i, inc) for i in idx[lo : lo + take])
        total += len(idx)
    return total, out


_INTERVAL_DELTA = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


def _floor_bucket(dt: datetime, interval: str) -> datetime:
    if interval == "minute":
        return dt.replace(second=0, microsecond=0)
    if interval == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_bucket(dt: datetime, interval: str) -> datetime:
    if interval == "month":
        return dt.replace(year=dt.year + (dt.month == 12), month=dt.month % 12 + 1)
    return dt + _INTERVAL_DELTA[interval]


def openpanel_buckets(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Bucket starts covering [start, end) (start floored to the interval)."""
    out = []
    b = _floor_bucket(start, interval)
    while b < end:
        out.append(b)
        b = _next_bucket(b, interval)
    return out


def _as_window(start: str | date | datetime, end: str | date | datetime) -> tuple[datetime, datetime]:
    """Dates are inclusive whole days; datetimes are taken as an exact [start, end) window."""
    if isinstance(start, datetime):
        s = start
    else:
        d = _parse_date(start)
        s = datetime(d.year, d.month, d.day, tzinfo=UTC)
    if isinstance(end, datetime):
        e = end
    else:
        d = _parse_date(end)
        e = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1)
    return s.astimezone(UTC), e.astimezone(UTC)


def _chart_value(
    config: SandboxConfig,
    project_id: str,
    ev: dict[str, Any],
    combo: tuple[str, ...],
    bucket: datetime,
    interval: str,
) -> float:
    seconds = (_next_bucket(bucket, interval) - bucket).total_seconds()
    per_day = max(1, openpanel_events_per_day(config, project_id))
    weight = dict(_OP_EVENTS).get(ev["name"], 3) / 100
    expected = per_day * weight * seconds / DAY_S / max(1, 2 ** len(combo))
    key = json.dumps([ev.get("filters", []), ev.get("segment", "event"), ev.get("property")], sort_keys=True)
    r = _h("op-chart", config.seed, project_id, ev["name"], key, combo, int(bucket.timestamp()), interval)
    count = int(expected * (0.5 + (r % 1000) / 1000) + (r >> 20) % 2)
    if ev.get("filters"):
        count //= 2
    segment = ev.get("segment", "event")
    if segment in ("user", "session", "one_event_per_user"):
        count = count * 2 // 5
    elif segment == "user_average":
        return round(1 + (r % 300) / 100, 2) if count else 0
    elif segment.startswith("property_"):
        return (
            round(count * (5 + (r >> 12) % 5000 / 100), 2)
            if segment == "property_sum"
            else round(5 + (r >> 12) % 5000 / 100, 2)
            if count
            else 0
        )
    return count


def _pct(cur: float, prev: float) -> float | None:
    return round((cur - prev) / prev * 100, 2) if prev else None


def _metrics(values: list[float]) -> dict[str, float]:
    if not values:
        return {"sum": 0, "average": 0, "min": 0, "max": 0}
    s = sum(values)
    s = round(s, 2) if isinstance(s, float) else s
    return {"sum": s, "average": round(s / len(values), 2), "min": min(values), "max": max(values)}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def openpanel_chart(
    config: SandboxConfig,
    project_id: str,
    events: list[dict[str, Any]],
    breakdowns: list[dict[str, Any]],
    interval: str,
    start_date: str | date | datetime,
    end_date: str | date | datetime,
    previous: bool,
) -> dict[str, Any]:
    """Chart response: one series per (event, breakdown value combination), a point per bucket."""
    start, end = _as_window(start_date, end_date)
    buckets = openpanel_buckets(start, end, interval)
    span = end - start
    value_lists = [
        OPENPANEL_BREAKDOWN_VALUES.get(b["name"], ("(not set)", f"{b['name']}-a", f"{b['name']}-b"))
        for b in breakdowns
    ]
    series = []
    totals = [0.0] * len(buckets)
    prev_totals = [0.0] * len(buckets)
    for n_ev, ev in enumerate(events):
        for combo in itertools.product(*value_lists):
            cur = [_chart_value(config, project_id, ev, combo, b, interval) for b in buckets]
            points: list[dict[str, Any]] = []
            prevs = (
                [_chart_value(config, project_id, ev, combo, b - span, interval) for b in buckets]
                if previous
                else []
            )
            for k, b in enumerate(buckets):
                p: dict[str, Any] = {"date": _iso_ms(int(b.timestamp() * 1000)), "count": cur[k]}
                totals[k] += cur[k]
                if previous:
                    p["previous"] = {"value": prevs[k], "change": _pct(cur[k], prevs[k])}
                    prev_totals[k] += prevs[k]
                points.append(p)
            metrics: dict[str, Any] = _metrics(cur)
            if previous:
                pm = _metrics(prevs)
                metrics["previous"] = {
                    key: {"value": pm[key], "change": _pct(metrics[key], pm[key])}
                    for key in ("sum", "average")
                }
            names = [ev["name"], *combo]
            series.append(
                {
                    "id": "-".join(_slug(x) for x in names),
                    "names": names,
                    "event": {"id": f"evt{n_ev + 1}", "name": ev["name"]},
                    "metrics": metrics,
                    "data": points,
                }
            )
    top: dict[str, Any] = _metrics(
        [round(t, 2) if isinstance(t, float) and not t.is_integer() else int(t) for t in totals]
    )
    if previous:
        pt = _metrics([int(t) if float(t).is_integer() else round(t, 2) for t in prev_totals])
        top["previous"] = {"sum": {"value": pt["sum"], "change": _pct(top["sum"], pt["sum"])}}
    return {"series": series, "metrics": top}


# --------------------------------------------------------------------------------------------------
# Peer5
# --------------------------------------------------------------------------------------------------

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
) -> list[dict[str, Any]]:
    """Rows for buckets from_ms <= t < to_ms; with dimensions one row per (t, value combination)."""
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
                r = _h("peer5", config.seed, t, interval, m, combo, fkey)
                noise = 0.6 + (r % 800) / 1000
                if m == "http":
                    row[m] = int(2_000_000 * minutes * part * noise)
                elif m == "p2p":
                    row[m] = int(3_500_000 * minutes * part * noise)
                elif m == "played":
                    row[m] = int(55_000 * minutes * 40 * part * noise)
                elif m == "rebuffered":
                    row[m] = int(900 * minutes * 40 * part * noise)
                else:
                    row[m] = round(40 * part * noise, 2)
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


# --------------------------------------------------------------------------------------------------
# Sealmetrics
# --------------------------------------------------------------------------------------------------

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
        factor /= 2 + _h("sm-sel", config.seed, k, v) % 4
    return math.ceil(base * factor) if base else 0


def sealmetrics_row_count(
    config: SandboxConfig,
    site_id: str,
    export_type: str,
    date_from: str | date,
    date_to: str | date,
    filters: dict[str, str] | None = None,
) -> int:
    """Exact row count of an export (used for the 10,000-row sync/background decision)."""
    days = (_parse_date(date_to) - _parse_date(date_from)).days + 1
    return max(0, days) * sealmetrics_rows_for_day(config, export_type, filters)


def _sm_dim_value(col: str, i: int) -> str:
    vals = _SM_DIM_VALUES[col]
    v = vals[i % len(vals)]
    return v if i < len(vals) else f"{v}-{i // len(vals)}"


def sealmetrics_rows(
    config: SandboxConfig,
    site_id: str,
    export_type: str,
    date_from: str | date,
    date_to: str | date,
    filters: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of an export in file order (date ascending, then row index)."""
    filters = dict(filters or {})
    n = sealmetrics_rows_for_day(config, export_type, filters)
    fkey = _sm_filter_key(filters)
    padding = "x" * config.sealmetrics_row_padding if config.sealmetrics_row_padding > 0 else None
    dim_col = _SM_DIM_COLUMN.get(export_type)
    for d in _days(_parse_date(date_from), _parse_date(date_to)):
        ds = d.isoformat()
        base = _h("sealmetrics", config.seed, site_id, export_type, ds, fkey)
        for i in range(n):
            r = _mix(base + i)
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
            if padding is not None:
                row["padding"] = padding
            yield row


def sealmetrics_columns(config: SandboxConfig, export_type: str) -> list[str]:
    cols = list(SEALMETRICS_COLUMNS[export_type])
    if config.sealmetrics_row_padding > 0:
        cols.append("padding")
    return cols


def sealmetrics_file_chunks(
    config: SandboxConfig, job_params: dict[str, Any], fmt: str, chunk_size: int = 64 * 1024
) -> Iterator[bytes]:
    """Exact bytes of an export file (CSV with header, or a JSON array), generated lazily."""
    rows = sealmetrics_rows(
        config,
        job_params["site_id"],
        job_params["export_type"],
        job_params["date_from"],
        job_params["date_to"],
        job_params.get("filters") or {},
    )
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


def sealmetrics_file_size(config: SandboxConfig, job_params: dict[str, Any], fmt: str) -> int:
    """Byte length of the file (one pass over the generator; never holds the file in memory)."""
    return sum(len(c) for c in sealmetrics_file_chunks(config, job_params, fmt))


def human_size(n: int) -> str:
    """'44.2 KB'-style sizes as in the Sealmetrics docs."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
