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
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

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


def _select(config: SandboxConfig, session: dict[str, Any], fields: Iterable[str] | None) -> dict[str, Any]:
    """The session as served: selected fields, ``sessionId`` unless switched off, sparse if switched on."""
    wanted = set(BROWSEE_FIELDS if fields is None else fields)
    if config.browsee_session_id:
        wanted.add("sessionId")
    return {
        k: v for k, v in session.items() if k in wanted and not (config.browsee_sparse and v in (None, []))
    }


def browsee_sessions(
    config: SandboxConfig,
    start_s: int,
    end_s: int,
    segment_id: str | None = None,
    fields: Iterable[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """All sessions with start_s <= timestamp/1000 < end_s, oldest first (KeyError: unknown segment).

    The truth of the half-open window, shaped as served (``browsee_session_id``/``browsee_sparse``)
    but never widened by ``browsee_end_inclusive``.
    """
    fields = list(fields) if fields is not None else None
    for day, idx in _browsee_windows(config, start_s, end_s, segment_id):
        for i in idx:
            yield _select(config, browsee_session(config, day, i), fields)


def browsee_page(
    config: SandboxConfig,
    start_s: int,
    end_s: int,
    segment_id: str | None,
    fields: Iterable[str] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, sessions[offset:offset+limit]) computed without generating skipped sessions.

    With ``browsee_end_inclusive`` the sessions starting within the second ``end_s`` are served too.
    """
    fields = list(fields) if fields is not None else None
    total = 0
    out: list[dict[str, Any]] = []
    served_end = end_s + 1 if config.browsee_end_inclusive else end_s
    for day, idx in _browsee_windows(config, start_s, served_end, segment_id):
        lo = max(0, offset - total)
        take = limit - len(out)
        if take > 0 and lo < len(idx):
            out.extend(_select(config, browsee_session(config, day, i), fields) for i in idx[lo : lo + take])
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


def braze_bucket(config: SandboxConfig, unit: str, moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the bucket holding ``moment``: hours and days of the company time zone."""
    tz = ZoneInfo(config.braze_timezone)
    local = moment.astimezone(tz)
    if unit == "hour":
        first = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return first, first + timedelta(hours=1)  # absolute hours: a DST change has no 2-hour bucket
    if unit == "day":
        day = local.date()
        first = datetime.combine(day, time(), tz)
        return first.astimezone(UTC), datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
    raise ValueError(f"unknown unit {unit!r}")


def braze_sessions(
    config: SandboxConfig, unit: str, bucket_start: datetime, app_id: str | None, segment_id: str | None
) -> int:
    """Sessions in one bucket; a day is exactly the sum of its hours so both units agree."""
    if bucket_start.tzinfo is None:
        bucket_start = bucket_start.replace(tzinfo=UTC)
    first, end = braze_bucket(config, unit, bucket_start)
    hours = int((end - first) // timedelta(hours=1))
    return sum(_braze_hour(config.seed, first + timedelta(hours=h), app_id, segment_id) for h in range(hours))


def braze_label(config: SandboxConfig, unit: str, bucket_start: datetime) -> str:
    """``time`` as served: a company-zone date for days; for hours per ``braze_time_format``."""
    local = bucket_start.astimezone(ZoneInfo(config.braze_timezone))
    if unit == "day":
        return local.date().isoformat()
    if config.braze_time_format == "offset":
        return local.isoformat(timespec="seconds")
    if config.braze_time_format == "naive":
        return local.replace(tzinfo=None).isoformat(timespec="seconds")
    return bucket_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def braze_series(
    config: SandboxConfig,
    length: int,
    unit: str,
    ending_at: datetime,
    app_id: str | None = None,
    segment_id: str | None = None,
) -> list[dict[str, Any]]:
    """The ``length`` buckets ending with the one containing ``ending_at``, oldest first."""
    starts = [braze_bucket(config, unit, ending_at)[0]]
    while len(starts) < length:
        starts.append(braze_bucket(config, unit, starts[-1] - timedelta(microseconds=1))[0])
    return [
        {
            "time": braze_label(config, unit, b),
            "sessions": braze_sessions(config, unit, b, app_id, segment_id),
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
) -> list[dict[str, Any]]:
    """The truth of a window: every bucket starting in [start, end), labelled as served, with
    ``bucket_start``, the bucket's UTC start (``...Z``) that a client must recover from ``time``."""
    out = []
    bucket = braze_bucket(config, unit, start)
    if bucket[0] < start:
        bucket = braze_bucket(config, unit, bucket[1])
    while bucket[0] < end:
        out.append(
            {
                "time": braze_label(config, unit, bucket[0]),
                "sessions": braze_sessions(config, unit, bucket[0], app_id, segment_id),
                "bucket_start": bucket[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        bucket = braze_bucket(config, unit, bucket[1])
    return out


# --------------------------------------------------------------------------------------------------
# OpenPanel
# --------------------------------------------------------------------------------------------------
# Modelled on the open-source server (Openpanel-dev/openpanel): newest-first listing, anonymous
# device events stitched to a profile, every ``properties`` value a string, two-letter countries.

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
#: (country code, region, city, latitude, longitude)
_OP_GEO = (
    ("US", "New York", "New York", 40.71, -74.01),
    ("US", "California", "San Francisco", 37.77, -122.42),
    ("CA", "Ontario", "Toronto", 43.65, -79.38),
    ("DE", "Berlin", "Berlin", 52.52, 13.40),
    ("IL", "Tel Aviv", "Tel Aviv", 32.09, 34.78),
    ("BR", "Sao Paulo", "Sao Paulo", -23.55, -46.63),
)
#: (device, os, os version, browser, browser version, brand, model)
_OP_DEVICES = (
    ("desktop", "Mac OS", "14.4", "Chrome", "123.0", "Apple", "Macintosh"),
    ("desktop", "Windows", "10", "Edge", "122.0", "", ""),
    ("desktop", "Windows", "11", "Chrome", "123.0", "", ""),
    ("mobile", "iOS", "17.4", "Mobile Safari", "17.4", "Apple", "iPhone"),
    ("mobile", "Android", "14", "Chrome", "123.0", "Samsung", "SM-S918B"),
    ("tablet", "iOS", "17.3", "Mobile Safari", "17.3", "Apple", "iPad"),
)
#: (referrer, referrerName, referrerType); "" is direct traffic, as on the real server.
_OP_REFERRERS = (
    ("", "", ""),
    ("", "", ""),
    ("https://www.google.com/", "Google", "search"),
    ("https://www.facebook.com/", "Facebook", "social"),
    ("https://news.ycombinator.com/", "Hacker News", "unknown"),
)
#: Chart breakdown values; "" (direct traffic) is a real referrer value, dropped from ``names``.
OPENPANEL_BREAKDOWN_VALUES: dict[str, tuple[str, ...]] = {
    "country": ("US", "CA", "DE", "IL", "BR"),
    "region": ("New York", "California", "Ontario", "Berlin", "Tel Aviv", "Sao Paulo"),
    "city": ("New York", "San Francisco", "Toronto", "Berlin", "Tel Aviv", "Sao Paulo"),
    "device": ("desktop", "mobile", "tablet"),
    "browser": ("Chrome", "Edge", "Mobile Safari"),
    "os": ("Mac OS", "Windows", "iOS", "Android"),
    "referrer": ("", "https://www.google.com/", "https://www.facebook.com/"),
    "referrer_name": ("", "Google", "Facebook"),
    "path": tuple(p for p, _ in _OP_PATHS),
}
#: Every event column the export endpoint can return, in export order (``getEventList``'s
#: select list as mapped by ``transformEvent``; ``duration`` is selected but never mapped).
OPENPANEL_EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "deviceId",
    "profileId",
    "projectId",
    "sessionId",
    "createdAt",
    "path",
    "origin",
    "referrer",
    "referrerName",
    "referrerType",
    "country",
    "region",
    "city",
    "longitude",
    "latitude",
    "os",
    "osVersion",
    "browser",
    "browserVersion",
    "device",
    "brand",
    "model",
    "sdkName",
    "sdkVersion",
    "revenue",
    "groups",
    "properties",
)
#: What ``getEventList`` selects unless ``includes`` names more (``createdAt``/``projectId`` are
#: always selected; ``groups`` is always mapped, as ``[]`` when not selected).
OPENPANEL_DEFAULT_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "deviceId",
    "profileId",
    "sessionId",
    "projectId",
    "createdAt",
    "path",
    "city",
    "country",
    "os",
    "browser",
)
_OP_PROFILES = 1000


def openpanel_events_per_day(config: SandboxConfig, project_id: str) -> int:
    return int(config.openpanel_events_per_day * OPENPANEL_PROJECTS.get(project_id, 1.0))


def openpanel_profile_id(k: int) -> str:
    """External id of profile ``k``: every tenth is digits only (numeric ids from a customer's DB)."""
    return str(100_000 + k) if k % 10 == 7 else f"user_{k}"


def _op_device_of(k: int) -> str:
    return f"device_{_mix(k) & 0xFFFFFF:06x}"


def _op_base(seed: int, project_id: str, d: date) -> int:
    return _h("openpanel", seed, project_id, d.toordinal())


def _op_who(base: int, i: int) -> tuple[str, int, str, str]:
    """(name, profile index or -1, profileId, deviceId) of event ``i``.

    One event in five is anonymous (profileId = deviceId); half of those come from a profile's
    own device before it identified, so a ``profileId`` listing stitches them in.
    """
    r2 = _mix(_mix(base + i))
    name = _OP_TABLE[_mix(base + i) % 100]
    k = (r2 >> 8) % _OP_PROFILES
    if r2 % 5:
        return name, k, openpanel_profile_id(k), _op_device_of(k)
    device = _op_device_of(k) if (r2 >> 40) & 1 else f"device_{(r2 >> 8) & 0xFFFFFF:06x}"
    return name, -1, device, device


def _op_ts(base: int, n: int, day_ms: int, i: int) -> int:
    return _slot_ms(day_ms, n, i, _mix(base + i))


def _op_event(
    project_id: str, base: int, i: int, ts: int, id_tag: str, includes: Iterable[str] = ()
) -> dict[str, Any]:
    """The full event (every field of :data:`OPENPANEL_EVENT_FIELDS`, plus profile/meta if asked)."""
    r3 = _mix(_mix(base + i) ^ 0x5DEECE66D)
    name, k, profile_id, device_id = _op_who(base, i)
    who = k if k >= 0 else int(device_id[7:], 16)
    country, region, city, lat, lon = _OP_GEO[_mix(who + 1) % len(_OP_GEO)]
    device, os_name, os_version, browser, browser_version, brand, model = _OP_DEVICES[
        _mix(who + 2) % len(_OP_DEVICES)
    ]
    path, title = _OP_PATHS[r3 % len(_OP_PATHS)]
    referrer, referrer_name, referrer_type = _OP_REFERRERS[(r3 >> 8) % len(_OP_REFERRERS)]
    origin = "https://example.com" if project_id != "proj-app" else "https://app.example.com"
    props: dict[str, str] = {"path": path, "title": title, "url": origin + path}
    if referrer:
        props["__referrer"] = referrer
    revenue = 0
    if name == "purchase":
        revenue = 1000 + (r3 >> 16) % 49000
        props["total"] = f"{revenue / 100:.2f}"
    ev: dict[str, Any] = {
        "id": f"evt_{id_tag}{i:08d}{r3 & 0xFFFF:04x}",
        "name": name,
        "deviceId": device_id,
        "profileId": profile_id,
        "projectId": project_id,
        "sessionId": f"session_{_mix(who * 1_000_003 + ts // 3_600_000) & 0xFFFFFFFFFF:010x}",
        "createdAt": _iso_ms(ts),
        "path": path,
        "origin": origin,
        "referrer": referrer,
        "referrerName": referrer_name,
        "referrerType": referrer_type,
        "country": country,
        "region": region,
        "city": city,
        "longitude": lon,
        "latitude": lat,
        "os": os_name,
        "osVersion": os_version,
        "browser": browser,
        "browserVersion": browser_version,
        "device": device,
        "brand": brand,
        "model": model,
        "sdkName": "web",
        "sdkVersion": "1.0.1",
        "revenue": revenue,
        "groups": [],
        "properties": props,
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


def openpanel_event(
    config: SandboxConfig, project_id: str, d: date, i: int, includes: Iterable[str] = ()
) -> dict[str, Any]:
    """Event ``i`` of day ``d`` (computed from its index alone, so any page is O(page))."""
    n = openpanel_events_per_day(config, project_id)
    base = _op_base(config.seed, project_id, d)
    ts = _op_ts(base, n, (d - date(1970, 1, 1)).days * DAY_MS, i)
    return _op_event(project_id, base, i, ts, d.strftime("%Y%m%d"), includes)


def _op_matches(
    who: tuple[str, int, str, str], wanted: frozenset[str] | None, profile_id: str | None
) -> tuple[bool, bool]:
    """(listed, counted): the list stitches the profile's anonymous device events in, the count not."""
    name, _k, pid, device = who
    if wanted is not None and name not in wanted:
        return False, False
    if profile_id is None:
        return True, True
    if pid == profile_id:
        return True, True
    k = _op_profile_index(profile_id)
    return k is not None and pid == device and device == _op_device_of(k), False


def _op_profile_index(profile_id: str) -> int | None:
    if profile_id.startswith("user_") and profile_id[5:].isdigit():
        k = int(profile_id[5:])
    elif profile_id.isdigit():
        k = int(profile_id) - 100_000
    else:
        return None
    return k if 0 <= k < _OP_PROFILES and openpanel_profile_id(k) == profile_id else None


@lru_cache(maxsize=256)
def _op_filtered_day(
    seed: int,
    project_id: str,
    n: int,
    ordinal: int,
    events: frozenset[str] | None,
    profile_id: str | None,
) -> tuple[tuple[int, ...], frozenset[int]]:
    """(indices listed, the subset counted) of one day's events for a filter."""
    base = _op_base(seed, project_id, date.fromordinal(ordinal))
    listed, counted = [], set()
    for i in range(n):
        shown, count = _op_matches(_op_who(base, i), events, profile_id)
        if shown:
            listed.append(i)
            if count:
                counted.add(i)
    return tuple(listed), frozenset(counted)


def openpanel_live_events(config: SandboxConfig, project_id: str, since_ms: int, now_ms: int) -> int:
    """How many live events arrived in [since, now] at ``openpanel_live_events_per_second``."""
    rate = float(config.openpanel_live_events_per_second)
    if rate <= 0 or now_ms < since_ms:
        return 0
    return int((now_ms - since_ms) * rate / 1000) + 1


def _op_live_ts(config: SandboxConfig, since_ms: int, j: int) -> int:
    return since_ms + int(j * 1000 / float(config.openpanel_live_events_per_second))


class _Day:
    """One day's listed events, newest first (``created_at DESC, id ASC``), visible at ``now``."""

    def __init__(
        self,
        config: SandboxConfig,
        project_id: str,
        d: date,
        events: frozenset[str] | None,
        profile_id: str | None,
        now_ms: int,
        live_since_ms: int | None,
    ) -> None:
        n = openpanel_events_per_day(config, project_id)
        self.base = _op_base(config.seed, project_id, d)
        self.day_ms = (d - date(1970, 1, 1)).days * DAY_MS
        self.tag = d.strftime("%Y%m%d")
        self.n = n
        if events is None and profile_id is None:
            listed: Sequence[int] = range(n)
            counted: frozenset[int] | None = None
        else:
            listed, counted = _op_filtered_day(config.seed, project_id, n, d.toordinal(), events, profile_id)
        if now_ms < self.day_ms + DAY_MS:  # today (or later): only what exists yet
            visible = bisect_left(listed, now_ms + 1, key=lambda i: _op_ts(self.base, n, self.day_ms, i))
            listed = listed[:visible]
        self.base_listed = listed
        self.base_counted = len(listed) if counted is None else sum(1 for i in listed if i in counted)
        self.live: list[tuple[int, str, int, dict[str, Any]]] = []
        if live_since_ms is not None and live_since_ms < self.day_ms + DAY_MS and now_ms >= self.day_ms:
            live_base = _h("openpanel-live", config.seed, project_id, live_since_ms)
            for j in range(openpanel_live_events(config, project_id, live_since_ms, now_ms)):
                ts = _op_live_ts(config, live_since_ms, j)
                if not self.day_ms <= ts < self.day_ms + DAY_MS:
                    continue
                shown, count = _op_matches(_op_who(live_base, j), events, profile_id)
                if shown:
                    ev = _op_event(project_id, live_base, j, ts, "live", ("profile", "meta"))
                    self.live.append((ts, ev["id"], int(count), ev))
        self.counted = self.base_counted + sum(c for _, _, c, _ in self.live)
        self.size = len(listed) + len(self.live)

    def rows(self, lo: int, hi: int, config: SandboxConfig, project_id: str) -> list[dict[str, Any]]:
        """Rows ``lo:hi`` of the day in listing order (full events with profile and meta)."""
        if not self.live:
            picked = [self.base_listed[len(self.base_listed) - 1 - k] for k in range(lo, min(hi, self.size))]
            return [self._base_event(i, project_id) for i in picked]
        merged: list[tuple[int, str, Any]] = [
            (_op_ts(self.base, self.n, self.day_ms, i), "", i) for i in self.base_listed
        ]
        merged += [(ts, ev_id, ev) for ts, ev_id, _, ev in self.live]
        merged.sort(key=lambda item: -item[0])
        out = []
        for _ts, ev_id, item in merged[lo:hi]:
            out.append(item if ev_id else self._base_event(item, project_id))
        return out

    def _base_event(self, i: int, project_id: str) -> dict[str, Any]:
        ts = _op_ts(self.base, self.n, self.day_ms, i)
        return _op_event(project_id, self.base, i, ts, self.tag, ("profile", "meta"))


def _op_listing(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None,
    profile_id: str | None,
    now_ms: int | None,
    live_since_ms: int | None,
) -> Iterator[_Day]:
    """The days of the inclusive range, newest first."""
    wanted = frozenset(events) if events else None
    now = int(config.clock() * 1000) if now_ms is None else now_ms
    first, d = _parse_date(start_date), _parse_date(end_date)
    while d >= first:
        if (d - date(1970, 1, 1)).days * DAY_MS <= now:
            yield _Day(config, project_id, d, wanted, profile_id, now, live_since_ms)
        d -= timedelta(days=1)


def openpanel_select(event: dict[str, Any], includes: Iterable[str]) -> dict[str, Any]:
    """What the server sends of a full event: the default columns plus those ``includes`` names."""
    named = set(includes)
    selected = set(OPENPANEL_DEFAULT_FIELDS) | named
    out = {key: value for key, value in event.items() if key in selected and key in OPENPANEL_EVENT_FIELDS}
    out.setdefault("groups", [])
    for extra in ("profile", "meta"):
        if extra in named and extra in event:
            out[extra] = event[extra]
    return out


def openpanel_events(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None = None,
    profile_id: str | None = None,
    includes: Iterable[str] | None = None,
    now_ms: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Full events of the inclusive UTC date range in the server's order (newest first).

    The truth an export is compared with: every field of :data:`OPENPANEL_EVENT_FIELDS`, plus
    ``profile``/``meta`` when ``includes`` names them. Live traffic is not included: it only
    ever arrives after the windows tests export.
    """
    extra = [name for name in includes or () if name in ("profile", "meta")]
    for day in _op_listing(config, project_id, start_date, end_date, events, profile_id, now_ms, None):
        for row in day.rows(0, day.size, config, project_id):
            yield {key: value for key, value in row.items() if key in OPENPANEL_EVENT_FIELDS or key in extra}


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
    live_since_ms: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(totalCount, rows of 1-based ``page``) as ``getEventList``/``getEventsCount`` answer them.

    Rows are newest first; the count counts ``profile_id = X`` only while the list also holds
    the profile's anonymous device events.
    """
    inc = tuple(includes or ())
    offset = (page - 1) * limit
    seen = total = 0
    out: list[dict[str, Any]] = []
    for day in _op_listing(config, project_id, start_date, end_date, events, profile_id, None, live_since_ms):
        lo = max(0, offset - seen)
        take = limit - len(out)
        if take > 0 and lo < day.size:
            out.extend(openpanel_select(row, inc) for row in day.rows(lo, lo + take, config, project_id))
        seen += day.size
        total += day.counted
    return total, out


# -- charts ------------------------------------------------------------------------------------------

_INTERVAL_DELTA = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


def _floor_bucket(local: datetime, interval: str) -> datetime:
    """Bucket start of a naive local time (``toStartOf<interval>`` in the session time zone)."""
    if interval == "minute":
        return local.replace(second=0, microsecond=0)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_bucket(local: datetime, interval: str) -> datetime:
    if interval == "month":
        return local.replace(year=local.year + (local.month == 12), month=local.month % 12 + 1)
    return local + _INTERVAL_DELTA[interval]


def _aware(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone)


def openpanel_buckets(start: datetime, end: datetime, interval: str, zone: ZoneInfo) -> list[datetime]:
    """Naive local bucket starts of ``WITH FILL FROM toStartOf(start) TO toStartOf(end)`` (TO excluded),
    plus the bucket of ``end`` when ``end`` is past its start (rows there exist, so the bucket does)."""
    lo = _floor_bucket(start.astimezone(zone).replace(tzinfo=None), interval)
    end_local = end.astimezone(zone).replace(tzinfo=None)
    hi = _floor_bucket(end_local, interval)
    out = []
    b = lo
    while b < hi:
        out.append(b)
        b = _next_bucket(b, interval)
    if end_local > hi:
        out.append(hi)
    return out


def _chart_value(
    config: SandboxConfig,
    project_id: str,
    ev: dict[str, Any],
    combo: tuple[str, ...],
    bucket: datetime,
    bucket_end: datetime,
    covered: float,
    interval: str,
) -> float:
    """The bucket's value counting only the ``covered`` share of it (SQL ``>= start AND <= end``)."""
    seconds = (bucket_end - bucket).total_seconds()
    per_day = max(1, openpanel_events_per_day(config, project_id))
    weight = dict(_OP_EVENTS).get(ev["name"], 3) / 100
    expected = per_day * weight * seconds / DAY_S / max(1, 2 ** len(combo))
    key = json.dumps([ev.get("filters", []), ev.get("segment", "event"), ev.get("property")], sort_keys=True)
    r = _h("op-chart", config.seed, project_id, ev["name"], key, combo, int(bucket.timestamp()), interval)
    count = int((expected * (0.5 + (r % 1000) / 1000) + (r >> 20) % 2) * covered)
    if ev.get("filters"):
        count //= 2
    segment = ev.get("segment", "event")
    if segment in ("user", "session", "one_event_per_user"):
        count = count * 2 // 5
    elif segment == "user_average":
        return round(1 + (r % 300) / 100, 2) if count else 0
    elif segment.startswith("property_"):
        if not count:
            return 0
        return (
            round(count * (5 + (r >> 12) % 5000 / 100), 2)
            if segment == "property_sum"
            else round(5 + (r >> 12) % 5000 / 100, 2)
        )
    return count


def previous_metric(current: float, previous: float | None) -> dict[str, Any] | None:
    """``getPreviousMetric``: {diff (percent, 1 decimal), state, value}."""
    if previous is None:
        return None
    if current > previous:
        ratio = current / previous if previous else math.inf
    elif current < previous:
        ratio = previous / current if current else math.inf
    else:
        ratio = 0.0
    diff = round((ratio - 1) * 100, 1) if math.isfinite(ratio) else None
    state = "positive" if current > previous else "negative" if current < previous else "neutral"
    return {"diff": None if current == previous else diff, "state": state, "value": previous}


def _metrics(values: list[float]) -> dict[str, float]:
    if not values:
        return {"sum": 0, "average": 0, "min": 0, "max": 0}
    s = sum(values)
    s = round(s, 2) if isinstance(s, float) else s
    return {"sum": s, "average": round(s / len(values), 2), "min": min(values), "max": max(values)}


def _slug(text: str) -> str:
    return "-".join(
        part for part in "".join(c if c.isalnum() else "-" for c in text.lower()).split("-") if part
    )


def _label(local: datetime, interval: str) -> str:
    """ClickHouse's JSON for the bucket: DateTime for minute/hour/day, Date for week/month."""
    return local.strftime("%Y-%m-%d" if interval in ("week", "month") else "%Y-%m-%d %H:%M:%S")


def known_breakdown(name: str) -> bool:
    """``isKnownEventField``: a column or a properties/profile/group path; others are dropped."""
    return name in OPENPANEL_BREAKDOWN_VALUES or name.startswith(("properties.", "profile.", "group."))


def _chart_series(
    config: SandboxConfig,
    project_id: str,
    events: list[dict[str, Any]],
    breakdowns: list[dict[str, Any]],
    interval: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> tuple[list[str], list[tuple[int, list[str], tuple[str, ...], list[float]]]]:
    """(bucket labels, [(definition index, names, breakdown values, counts)]) of one period."""
    buckets = openpanel_buckets(start, end, interval, zone)
    spans = []
    for b in buckets:
        lo, hi = _aware(b, zone), _aware(_next_bucket(b, interval), zone)
        inside = (min(hi, end) - max(lo, start)).total_seconds()
        spans.append((lo, hi, max(0.0, inside) / (hi - lo).total_seconds()))
    value_lists = [OPENPANEL_BREAKDOWN_VALUES.get(b["name"], ("", f"{b['name']}-a")) for b in breakdowns]
    out = []
    for index, ev in enumerate(events):
        groups: dict[tuple[str, ...], None] = {}
        for combo in itertools.product(*value_lists):
            counts = [_chart_value(config, project_id, ev, combo, lo, hi, c, interval) for lo, hi, c in spans]
            names = [ev["name"], *(value for value in combo if value)]
            if not any(counts) or tuple(names) in groups:  # no rows: no group; same labels: one group
                continue
            groups[tuple(names)] = None
            out.append((index, names, combo, counts))
    return [_label(b, interval) for b in buckets], out


def chart_previous_period(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``getChartPrevStartEndDate`` on the local 'yyyy-MM-dd HH:mm:ss' strings (whole seconds)."""
    lo, hi = start.astimezone(zone).replace(tzinfo=None), end.astimezone(zone).replace(tzinfo=None)
    diff_ms = int((hi - lo).total_seconds() * 1000)
    if (diff_ms / 1000) % 2 != 0:
        diff_ms += 1
    shift = timedelta(milliseconds=diff_ms)
    prev_lo, prev_hi = (lo - shift).replace(microsecond=0), (hi - shift).replace(microsecond=0)
    return _aware(prev_lo, zone), _aware(prev_hi, zone)


def openpanel_chart(
    config: SandboxConfig,
    project_id: str,
    events: list[dict[str, Any]],
    breakdowns: list[dict[str, Any]],
    interval: str,
    start: datetime,
    end: datetime,
    previous: bool,
    timezone_name: str = "UTC",
) -> dict[str, Any]:
    """``ChartEngine.execute`` for ``created_at >= start AND created_at <= end`` (aware datetimes).

    Buckets and their naive ``date`` labels are in the organization's time zone. Empty
    breakdown values are dropped from ``names``; ``event.breakdowns`` maps breakdown names to
    the remaining values by position, as the server does (so it shifts when an earlier value is
    empty). Series come sorted by sum, biggest first; with several events, names carry "(A) ".
    """
    zone = ZoneInfo(timezone_name)
    dims = [b for b in breakdowns if known_breakdown(b["name"])]
    labels, current = _chart_series(config, project_id, events, dims, interval, start, end, zone)
    prev: dict[tuple[Any, ...], list[float]] = {}
    if previous:
        p_start, p_end = chart_previous_period(start, end, zone)
        _p_labels, prev_series = _chart_series(
            config, project_id, events, dims, interval, p_start, p_end, zone
        )
        prev = {(index, *names[1:]): counts for index, names, _combo, counts in prev_series}
    alpha = len(events) > 1
    series = []
    all_values: list[float] = []
    for index, names, _combo, counts in current:
        letter = chr(ord("A") + index)
        shown = [f"({letter}) {names[0]}" if alpha else names[0], *names[1:]]
        prior = prev.get((index, *names[1:]))
        metrics: dict[str, Any] = _metrics(counts)
        metrics["count"] = max(counts)
        if prior is not None:
            pm = _metrics(prior)
            metrics["previous"] = {
                key: previous_metric(metrics[key], pm[key]) for key in ("sum", "average", "min", "max")
            }
            metrics["previous"]["count"] = previous_metric(metrics["count"], max(prior))
        points = []
        for k, count in enumerate(counts):
            point: dict[str, Any] = {"date": labels[k], "count": count}
            if prior is not None and k < len(prior):
                point["previous"] = previous_metric(count, prior[k])
            points.append(point)
        event: dict[str, Any] = {"id": letter, "name": events[index]["name"]}
        if dims and len(names) > 1:
            event["breakdowns"] = {
                dim["name"]: names[i + 1] for i, dim in enumerate(dims) if i + 1 < len(names)
            }
        series.append(
            {
                "id": _slug(f"{_slug(names[0])}-{letter}-{'-'.join(names)}"),
                "names": shown,
                "event": event,
                "metrics": metrics,
                "data": points,
            }
        )
        all_values += counts
    series.sort(key=lambda s: -s["metrics"]["sum"])
    return {"series": series, "metrics": _metrics(all_values)}


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
                if config.peer5_sparse and r % 5 == 0:
                    continue  # sparse: no value for this metric in this row, not even null
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
