"""Fake OpenPanel export API: the events and charts it serves and /export/events, /export/charts.

The server is open source, so the fake follows it instead of switches (real-services.md, OpenPanel).
Read from Openpanel-dev/openpanel: ``apps/api/src/routes/export.router.ts`` (rate limit, auth,
query parsing), ``apps/api/src/utils/parse-zod-query-string.ts`` (digits become numbers,
``true``/``false`` booleans, JSON is parsed), ``apps/api/src/controllers/export.controller.ts``
(zod schemas, clamped ``limit``/``page``, project rules, chart dates), ``packages/db`` (event list
and count, chart SQL and formatting) and ``apps/api/src/app.ts`` (error bodies).

Events are a pure function of ``seed``, ``openpanel_events_per_day`` and the day; event ``i`` is
computed from its index alone, so a page is O(page), and :func:`openpanel_events` /
:func:`openpanel_chart` are the truth tests compare with. The ``SandboxConfig`` knobs serve the
server's known behaviour under each setting a real organization may have:

- live traffic arriving while an export pages (rows shift, ``totalCount`` grows):
  ``openpanel_live_events_per_second``;
- the organization's time zone that charts read dates in and bucket by: ``openpanel_timezone``;
- the subscription's chart end date: ``openpanel_subscription_chart_end``;
- the 100-per-10-s limit: ``openpanel_rate_limit``/``openpanel_rate_window``;
- events reaching ClickHouse late: ``openpanel_flush_lag`` (every event is visible from createdAt +
  lag, the 10 s buffer flush) and ``late_share["openpanel"]``/``late_horizon["openpanel"]`` (a share
  of events is back-dated: it arrives up to the horizon after its createdAt, into past days); rows,
  ``totalCount`` and charts follow what has arrived by the clock (late.py);
- data shapes a real project produces: ``openpanel_unknown_country_share`` (events without a
  resolved country carry ``"\u0000\u0000"``, ClickHouse ``FixedString(2)``) and
  ``openpanel_boundary_events`` (events exactly on whole hours/minutes, so a chart ``end`` can meet one).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .late import late_delay, late_on
from .server import ErrorResponse, Request, Response, json_response
from .synthetic import DAY_MS, DAY_S, FIRST_NAMES, LAST_NAMES, mix, parse_date, slot_ms, stable_hash

if TYPE_CHECKING:
    from .server import SandboxServer

# -- data: events ------------------------------------------------------------------------------------
# Newest-first listing, anonymous device events stitched to a profile, every ``properties`` value a
# string, two-letter countries.

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


def _iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and Z, the format OpenPanel uses."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def openpanel_events_per_day(config: SandboxConfig, project_id: str) -> int:
    return int(config.openpanel_events_per_day * OPENPANEL_PROJECTS.get(project_id, 1.0))


def openpanel_profile_id(k: int) -> str:
    """External id of profile ``k``: every tenth is digits only (numeric ids from a customer's DB)."""
    return str(100_000 + k) if k % 10 == 7 else f"user_{k}"


def _op_device_of(k: int) -> str:
    return f"device_{mix(k) & 0xFFFFFF:06x}"


def _op_base(seed: int, project_id: str, d: date) -> int:
    return stable_hash("openpanel", seed, project_id, d.toordinal())


def _op_who(base: int, i: int) -> tuple[str, int, str, str]:
    """(name, profile index or -1, profileId, deviceId) of event ``i``.

    One event in five is anonymous (profileId = deviceId); half of those come from a profile's
    own device before it identified, so a ``profileId`` listing stitches them in.
    """
    r2 = mix(mix(base + i))
    name = _OP_TABLE[mix(base + i) % 100]
    k = (r2 >> 8) % _OP_PROFILES
    if r2 % 5:
        return name, k, openpanel_profile_id(k), _op_device_of(k)
    device = _op_device_of(k) if (r2 >> 40) & 1 else f"device_{(r2 >> 8) & 0xFFFFFF:06x}"
    return name, -1, device, device


def _op_ts(base: int, n: int, day_ms: int, i: int, snap: bool = False) -> int:
    """createdAt (ms) of event ``i``; with ``snap`` (``openpanel_boundary_events``) an event whose
    slot holds a whole hour (else a whole minute) sits exactly on it, still strictly in order."""
    if snap:
        lo, hi = day_ms + DAY_MS * i // n, day_ms + DAY_MS * (i + 1) // n
        for unit in (3_600_000, 60_000):
            edge = -(-lo // unit) * unit
            if edge < hi:
                return edge
    return slot_ms(day_ms, n, i, mix(base + i))


#: ``country`` of an event whose location did not resolve: ClickHouse ``FixedString(2)`` of nothing.
OPENPANEL_NO_COUNTRY = "\u0000\u0000"


def _op_event(
    project_id: str,
    base: int,
    i: int,
    ts: int,
    id_tag: str,
    includes: Iterable[str] = (),
    no_country_share: float = 0.0,
) -> dict[str, Any]:
    """The full event (every field of :data:`OPENPANEL_EVENT_FIELDS`, plus profile/meta if asked)."""
    r3 = mix(mix(base + i) ^ 0x5DEECE66D)
    name, k, profile_id, device_id = _op_who(base, i)
    who = k if k >= 0 else int(device_id[7:], 16)
    country, region, city, lat, lon = _OP_GEO[mix(who + 1) % len(_OP_GEO)]
    if no_country_share > 0 and mix(r3) % 10_000 < no_country_share * 10_000:
        country, region, city = OPENPANEL_NO_COUNTRY, "", ""  # the geo lookup found nothing
    device, os_name, os_version, browser, browser_version, brand, model = _OP_DEVICES[
        mix(who + 2) % len(_OP_DEVICES)
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
        "sessionId": f"session_{mix(who * 1_000_003 + ts // 3_600_000) & 0xFFFFFFFFFF:010x}",
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
            first, last = FIRST_NAMES[k % len(FIRST_NAMES)], LAST_NAMES[(k // 8) % len(LAST_NAMES)]
            ev["profile"] = {
                "id": profile_id,
                "email": f"{first.lower()}.{last.lower()}{k}@example.com",
                "firstName": first,
                "lastName": last,
                "isExternal": True,
                "createdAt": _iso_ms(1_704_067_200_000 + (mix(k + 3) % (300 * DAY_MS))),
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
    ts = _op_ts(base, n, (d - date(1970, 1, 1)).days * DAY_MS, i, config.openpanel_boundary_events)
    return _op_event(
        project_id, base, i, ts, d.strftime("%Y%m%d"), includes, config.openpanel_unknown_country_share
    )


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


def openpanel_late_on(config: SandboxConfig) -> bool:
    """Whether events reach the server after their createdAt (flush lag or back-dated events)."""
    return float(config.openpanel_flush_lag) > 0 or late_on(config, "openpanel")


def _op_arrived(
    config: SandboxConfig, base: int, n: int, day_ms: int, listed: Sequence[int], as_of_ms: int, snap: bool
) -> Sequence[int]:
    """The events of ``listed`` (ascending) in ClickHouse by ``as_of_ms``.

    Each is there from createdAt + flush lag, a late (back-dated) one from createdAt + its delay.
    Only events within the longest wait of ``as_of_ms`` are judged one by one, so a day long
    settled costs two bisections and no list.
    """
    lag = int(float(config.openpanel_flush_lag) * 1000)
    late = late_on(config, "openpanel")
    longest = max(lag, math.ceil(float(config.late_horizon["openpanel"]) * 1000) if late else 0)

    def ts(i: int) -> int:
        return _op_ts(base, n, day_ms, i, snap)

    sure = bisect_left(listed, as_of_ms - longest + 1, key=ts)
    if sure == len(listed):
        return listed
    upto = bisect_left(listed, as_of_ms - lag + 1, key=ts)
    tail = [
        i
        for i in listed[sure:upto]
        if ts(i) + max(lag, int(late_delay(config, "openpanel", mix(base + i)) * 1000)) <= as_of_ms
    ]
    return [*listed[:sure], *tail]


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
        as_of_ms: int | None = None,
    ) -> None:
        n = openpanel_events_per_day(config, project_id)
        self.base = _op_base(config.seed, project_id, d)
        self.day_ms = (d - date(1970, 1, 1)).days * DAY_MS
        self.tag = d.strftime("%Y%m%d")
        self.n = n
        self.snap = bool(config.openpanel_boundary_events)
        self.no_country = float(config.openpanel_unknown_country_share)
        if events is None and profile_id is None:
            listed: Sequence[int] = range(n)
            counted: frozenset[int] | None = None
        else:
            listed, counted = _op_filtered_day(config.seed, project_id, n, d.toordinal(), events, profile_id)
        if now_ms < self.day_ms + DAY_MS:  # today (or later): only what exists yet
            visible = bisect_left(listed, now_ms + 1, key=self.ts_of)
            listed = listed[:visible]
        if as_of_ms is not None:  # late events: only what reached the server
            listed = _op_arrived(config, self.base, n, self.day_ms, listed, as_of_ms, self.snap)
        self.base_listed = listed
        self.base_counted = len(listed) if counted is None else sum(1 for i in listed if i in counted)
        #: (createdAt, index, counted) of the live events listed; each event is built only when served.
        self.live: list[tuple[int, int, int]] = []
        self.live_base = 0
        if live_since_ms is not None and live_since_ms < self.day_ms + DAY_MS and now_ms >= self.day_ms:
            self.live_base = stable_hash("openpanel-live", config.seed, project_id, live_since_ms)
            # Live events wait for the buffer flush like every other event (never back-dated).
            flushed_ms = (
                now_ms if as_of_ms is None else as_of_ms - int(float(config.openpanel_flush_lag) * 1000)
            )
            for j in range(openpanel_live_events(config, project_id, live_since_ms, flushed_ms)):
                ts = _op_live_ts(config, live_since_ms, j)
                if not self.day_ms <= ts < self.day_ms + DAY_MS:
                    continue
                shown, count = _op_matches(_op_who(self.live_base, j), events, profile_id)
                if shown:
                    self.live.append((ts, j, int(count)))
        self.counted = self.base_counted + sum(c for _, _, c in self.live)
        self.size = len(listed) + len(self.live)

    def rows(self, lo: int, hi: int, config: SandboxConfig, project_id: str) -> list[dict[str, Any]]:
        """Rows ``lo:hi`` of the day in listing order (full events with profile and meta).

        Live events arrive from the first one's ``createdAt`` on, so only the base events from
        then on interleave with them (a stable sort, base first on a tie); every older base event
        lies below them all, newest first, by index (timestamps rise with the index).
        """
        listed = self.base_listed
        if not self.live:
            picked = [listed[len(listed) - 1 - k] for k in range(lo, min(hi, self.size))]
            return [self.base_event(i, project_id) for i in picked]
        split = bisect_left(listed, self.live[0][0], key=self.ts_of)
        top = [(self.ts_of(i), False, i) for i in listed[split:]]
        top += [(ts, True, j) for ts, j, _ in self.live]
        top.sort(key=lambda item: -item[0])
        out = []
        for k in range(lo, min(hi, self.size)):
            if k < len(top):
                ts, live, index = top[k]
                if live:
                    out.append(
                        _op_event(
                            project_id,
                            self.live_base,
                            index,
                            ts,
                            "live",
                            ("profile", "meta"),
                            self.no_country,
                        )
                    )
                    continue
            else:
                index = listed[split - 1 - (k - len(top))]
            out.append(self.base_event(index, project_id))
        return out

    def ts_of(self, i: int) -> int:
        return _op_ts(self.base, self.n, self.day_ms, i, self.snap)

    def base_event(self, i: int, project_id: str) -> dict[str, Any]:
        return _op_event(
            project_id, self.base, i, self.ts_of(i), self.tag, ("profile", "meta"), self.no_country
        )


def _op_listing(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None,
    profile_id: str | None,
    now_ms: int | None,
    live_since_ms: int | None,
    as_of_ms: int | None = None,
) -> Iterator[_Day]:
    """The days of the inclusive range, newest first (only what arrived by ``as_of_ms``, if given)."""
    wanted = frozenset(events) if events else None
    now = int(config.clock() * 1000) if now_ms is None else now_ms
    first, d = parse_date(start_date), parse_date(end_date)
    while d >= first:
        if (d - date(1970, 1, 1)).days * DAY_MS <= now:
            yield _Day(config, project_id, d, wanted, profile_id, now, live_since_ms, as_of_ms)
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


#: Events :func:`openpanel_events` builds at a time.
_TRUTH_SLICE = 1000


def openpanel_events(
    config: SandboxConfig,
    project_id: str,
    start_date: str | date,
    end_date: str | date,
    events: Iterable[str] | None = None,
    profile_id: str | None = None,
    includes: Iterable[str] | None = None,
    now_ms: int | None = None,
    as_of: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Full events of the inclusive UTC date range in the server's order (newest first).

    The truth an export is compared with: every field of :data:`OPENPANEL_EVENT_FIELDS`, plus
    ``profile``/``meta`` when ``includes`` names them. Live traffic is not included: it only
    ever arrives after the windows tests export. The events are final (every late one in place)
    unless ``as_of`` (sandbox epoch seconds) asks what the server held then.
    """
    keep = {*OPENPANEL_EVENT_FIELDS, *(name for name in includes or () if name in ("profile", "meta"))}
    as_of_ms = None if as_of is None else int(as_of * 1000)
    if now_ms is None:
        now_ms = as_of_ms
    listing = _op_listing(
        config, project_id, start_date, end_date, events, profile_id, now_ms, None, as_of_ms
    )
    for day in listing:
        for lo in range(0, day.size, _TRUTH_SLICE):  # a slice at a time: memory stays O(slice), not O(day)
            for row in day.rows(lo, lo + _TRUTH_SLICE, config, project_id):
                yield {key: value for key, value in row.items() if key in keep}


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
    as_of_ms = int(config.clock() * 1000) if openpanel_late_on(config) else None
    listing = _op_listing(
        config, project_id, start_date, end_date, events, profile_id, None, live_since_ms, as_of_ms
    )
    for day in listing:
        lo = max(0, offset - seen)
        take = limit - len(out)
        if take > 0 and lo < day.size:
            out.extend(openpanel_select(row, inc) for row in day.rows(lo, lo + take, config, project_id))
        seen += day.size
        total += day.counted
    return total, out


# -- data: charts ------------------------------------------------------------------------------------

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
    weight = dict(_OP_EVENTS).get(ev["name"], 0) / 100
    if not weight:  # a name no event has never occurs: its series is left out
        return 0
    expected = per_day * weight * seconds / DAY_S / max(1, 2 ** len(combo))
    key = json.dumps([ev.get("filters", []), ev.get("segment", "event"), ev.get("property")], sort_keys=True)
    moment = int(bucket.timestamp())
    r = stable_hash("op-chart", config.seed, project_id, ev["name"], key, combo, moment, interval)
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


def _op_arrived_share(config: SandboxConfig, project_id: str, lo_ms: int, hi_ms: int, as_of_ms: int) -> float:
    """Share of the project's events created in [lo_ms, hi_ms] that arrived by ``as_of_ms``.

    The chart's values are modelled, not counted; scaling them by this share makes a bucket grow
    exactly as its rows arrive (0 before any, final once all are in; 1.0 when it holds none).
    """
    n = openpanel_events_per_day(config, project_id)
    snap = bool(config.openpanel_boundary_events)
    total = arrived = 0
    for day in range(lo_ms // DAY_MS, hi_ms // DAY_MS + 1):
        day_ms = day * DAY_MS
        base = _op_base(config.seed, project_id, date(1970, 1, 1) + timedelta(days=day))

        def ts(i: int, base: int = base, day_ms: int = day_ms) -> int:
            return _op_ts(base, n, day_ms, i, snap)

        inside = range(bisect_left(range(n), lo_ms, key=ts), bisect_left(range(n), hi_ms + 1, key=ts))
        total += len(inside)
        arrived += len(_op_arrived(config, base, n, day_ms, inside, as_of_ms, snap))
    return arrived / total if total else 1.0


def _op_scaled(value: float, share: float) -> float:
    """A modelled chart value when only ``share`` of its rows arrived (averages keep their level)."""
    if share >= 1.0:
        return value
    if isinstance(value, int):
        return int(value * share)
    return value if share > 0 else 0


#: Breakdown name -> the event field it reads (for the events a chart meets exactly at ``end``).
_OP_BREAKDOWN_FIELDS = {
    "country": "country",
    "region": "region",
    "city": "city",
    "device": "device",
    "browser": "browser",
    "os": "os",
    "referrer": "referrer",
    "referrer_name": "referrerName",
    "path": "path",
}


def _op_events_at(
    config: SandboxConfig, project_id: str, moment_ms: int, as_of_ms: int | None
) -> list[dict[str, Any]]:
    """The events created exactly at ``moment_ms`` (that arrived by ``as_of_ms``, if given)."""
    if moment_ms > config.clock() * 1000:  # a range ending tomorrow meets no event there yet
        return []
    d = date(1970, 1, 1) + timedelta(days=moment_ms // DAY_MS)
    day = _Day(config, project_id, d, None, None, moment_ms, None, as_of_ms)
    hits = range(
        bisect_left(day.base_listed, moment_ms, key=day.ts_of),
        bisect_left(day.base_listed, moment_ms + 1, key=day.ts_of),
    )
    return [day.base_event(day.base_listed[k], project_id) for k in hits]


def known_breakdown(name: str) -> bool:
    """``isKnownEventField``: a column or a properties/profile/group path; others are dropped."""
    return name in OPENPANEL_BREAKDOWN_VALUES or name.startswith(("properties.", "profile.", "group."))


@dataclass(frozen=True)
class _ChartQuery:
    """A chart request but its period: each period (current, previous) is one :meth:`series` call."""

    config: SandboxConfig
    project_id: str
    events: list[dict[str, Any]]
    breakdowns: list[dict[str, Any]]
    interval: str
    zone: ZoneInfo
    #: Judge late events at this sandbox time (ms); None: the final chart.
    as_of_ms: int | None = None

    def series(
        self, start: datetime, end: datetime
    ) -> tuple[list[str], list[tuple[int, list[str], tuple[str, ...], list[float]]]]:
        """(bucket labels, [(definition index, names, breakdown values, counts)]) of one period.

        Events exactly at ``end`` are in range (``created_at <= end``): when ``end`` starts a
        bucket, a series they belong to gets that bucket as one more point (its label last).
        """
        interval, zone = self.interval, self.zone
        buckets = openpanel_buckets(start, end, interval, zone)
        spans = []
        for b in buckets:
            lo, hi = _aware(b, zone), _aware(_next_bucket(b, interval), zone)
            inside = (min(hi, end) - max(lo, start)).total_seconds()
            share = 1.0
            if self.as_of_ms is not None:
                first, last = int(max(lo, start).timestamp() * 1000), int(min(hi, end).timestamp() * 1000)
                share = _op_arrived_share(
                    self.config,
                    self.project_id,
                    first,
                    min(last, int(hi.timestamp() * 1000) - 1),
                    self.as_of_ms,
                )
            spans.append((lo, hi, max(0.0, inside) / (hi - lo).total_seconds(), share))
        labels = [_label(b, interval) for b in buckets]
        end_local = end.astimezone(zone).replace(tzinfo=None)
        at_end: list[dict[str, Any]] = []
        if _floor_bucket(end_local, interval) == end_local:
            at_end = _op_events_at(self.config, self.project_id, int(end.timestamp() * 1000), self.as_of_ms)
            labels.append(_label(end_local, interval))
        value_lists = [
            OPENPANEL_BREAKDOWN_VALUES.get(b["name"], ("", f"{b['name']}-a")) for b in self.breakdowns
        ]
        out = []
        for index, ev in enumerate(self.events):
            groups: dict[tuple[str, ...], None] = {}
            for combo in itertools.product(*value_lists):
                counts = [
                    _op_scaled(
                        _chart_value(self.config, self.project_id, ev, combo, lo, hi, c, interval), share
                    )
                    for lo, hi, c, share in spans
                ]
                last = sum(1 for row in at_end if row["name"] == ev["name"] and self._combo(row) == combo)
                if last:
                    counts.append(last)
                names = [ev["name"], *(value for value in combo if value)]
                if not any(counts) or tuple(names) in groups:  # no rows: no group; same labels: one group
                    continue
                groups[tuple(names)] = None
                out.append((index, names, combo, counts))
        return labels, out

    def _combo(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The breakdown values of one event (a value the event has no field for is empty)."""
        return tuple(str(row.get(_OP_BREAKDOWN_FIELDS.get(b["name"], ""), "")) for b in self.breakdowns)


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
    as_of: float | None = None,
) -> dict[str, Any]:
    """``ChartEngine.execute`` for ``created_at >= start AND created_at <= end`` (aware datetimes).

    Final unless ``as_of`` (sandbox epoch seconds) asks for the chart of what had arrived then.

    Buckets and their naive ``date`` labels are in the organization's time zone. Empty
    breakdown values are dropped from ``names``; ``event.breakdowns`` maps breakdown names to
    the remaining values by position, as the server does (so it shifts when an earlier value is
    empty). Series come sorted by sum, biggest first; with several events, names carry "(A) ".
    """
    zone = ZoneInfo(timezone_name)
    dims = [b for b in breakdowns if known_breakdown(b["name"])]
    as_of_ms = None if as_of is None else int(as_of * 1000)
    query = _ChartQuery(config, project_id, events, dims, interval, zone, as_of_ms)
    labels, current = query.series(start, end)
    prev: dict[tuple[Any, ...], list[float]] = {}
    if previous:
        _p_labels, prev_series = query.series(*chart_previous_period(start, end, zone))
        prev = {(index, *names[1:]): counts for index, names, _combo, counts in prev_series}
    alpha = len(events) > 1
    series: list[dict[str, Any]] = []
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


# -- API: /export/events, /export/charts -------------------------------------------------------------
SEGMENTS = (
    "event",
    "user",
    "session",
    "user_average",
    "one_event_per_user",
    "property_sum",
    "property_average",
    "property_min",
    "property_max",
    "group",
)
OPERATORS = (
    "is",
    "isNot",
    "contains",
    "doesNotContain",
    "startsWith",
    "endsWith",
    "regex",
    "isNull",
    "isNotNull",
    "gt",
    "lt",
    "gte",
    "lte",
    "isFromCohort",
    "isNotFromCohort",
)
INTERVALS = ("minute", "day", "hour", "week", "month")
RANGES = (
    "30min",
    "lastHour",
    "last24h",
    "today",
    "yesterday",
    "7d",
    "30d",
    "3m",
    "6m",
    "12m",
    "monthToDate",
    "lastMonth",
    "yearToDate",
    "lastYear",
    "custom",
)
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RATE_MESSAGE = "You have exceeded the rate limit for this endpoint."


def new_state() -> dict[str, Any]:
    return {"windows": {}, "live": None}


# -- rate limit: @fastify/rate-limit, 100 per 10 s, fixed window, keyed on the client id -------------
def _key(req: Request) -> str:
    return req.headers.get("openpanel-client-id") or req.headers.get("x-forwarded-for") or "ip"


def _count(sbx: SandboxServer, req: Request) -> tuple[int, float]:
    """Count this request in its client's window (before authentication); (count, seconds to reset)."""
    window = float(sbx.config.openpanel_rate_window)
    now = time.monotonic()
    with sbx.lock:
        windows: dict[str, list[float]] = sbx.state["openpanel"]["windows"]
        slot = windows.get(_key(req))
        if slot is None or now >= slot[0] + window:
            slot = windows[_key(req)] = [now, 0]
        slot[1] += 1
        return int(slot[1]), slot[0] + window - now


def extra_headers(sbx: SandboxServer, req: Request) -> dict[str, str]:
    """x-ratelimit-* on every response, as the plugin sends them (reset in whole seconds)."""
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return {}
    window = float(sbx.config.openpanel_rate_window)
    now = time.monotonic()
    with sbx.lock:
        slot = sbx.state["openpanel"]["windows"].get(_key(req)) or [now, 0]
    reset = max(0, math.ceil(slot[0] + window - now))
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(max(0, limit - int(slot[1]))),
        "x-ratelimit-reset": str(reset),
    }


def _rate_limit(sbx: SandboxServer, req: Request) -> None:
    limit = sbx.config.openpanel_rate_limit
    if limit is None:
        return
    count, left = _count(sbx, req)
    if count > limit:
        body = {"status": 429, "error": "Too Many Requests", "message": _RATE_MESSAGE}
        raise ErrorResponse(429, body, {"retry-after": str(max(1, math.ceil(left)))})


# -- errors, auth, query parsing ---------------------------------------------------------------------
def _http_error(status: int, message: str) -> ErrorResponse:
    """``HttpError`` through the app's error handler: ``error`` is undefined, so absent."""
    return ErrorResponse(status, {"status": status, "message": message})


def _invalid(path: str, message: str) -> ErrorResponse:
    """A zod validation failure as Fastify reports it (FST_ERR_VALIDATION)."""
    return ErrorResponse(
        400, {"status": 400, "error": "FastifyError", "message": f"querystring/{path} {message}"}
    )


def _client(req: Request) -> dict[str, Any]:
    """``validateExportRequest``: 401 ``{"error": "Unauthorized", "message": "Export: ..."}``."""
    creds = CREDENTIALS["openpanel"]
    client_id = req.headers.get("openpanel-client-id") or ""
    secret = req.headers.get("openpanel-client-secret") or ""
    clients = {
        creds["client_id"]: (creds["client_secret"], None),
        creds["read_client_id"]: (creds["read_client_secret"], creds["project_id"]),
    }

    def unauthorized(message: str) -> ErrorResponse:
        return ErrorResponse(401, {"error": "Unauthorized", "message": f"Export: {message}"})

    if not _UUID.match(client_id):
        raise unauthorized("Client ID must be a valid UUIDv4")
    if client_id not in clients:
        raise unauthorized("Invalid client id")
    if secret != clients[client_id][0]:
        raise unauthorized("Invalid client secret")
    project = clients[client_id][1]
    return {"type": "read" if project else "root", "projectId": project}


def _scalar(value: str) -> Any:
    """``parseScalar``: digit strings become numbers, true/false booleans, valid JSON is parsed."""
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    if value in ("true", "false"):
        return value == "true"
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return value if parsed is None else parsed


def _query(req: Request) -> dict[str, Any]:
    """Repeated keys are a list, each value parsed; ``a,b`` stays one string."""
    out: dict[str, Any] = {}
    for key, values in req.query.items():
        parsed = [_scalar(v) for v in values]
        out[key] = parsed if len(parsed) > 1 else parsed[0]
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "string"


def _string(q: dict[str, Any], name: str) -> str | None:
    value = q.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(name, f"Expected string, received {_kind(value)}")


def _strings(q: dict[str, Any], name: str, split: bool) -> list[str] | None:
    value = q.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()] if split else [value]
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(f"{name}/{i}", f"Expected string, received {_kind(item)}")
        return value
    raise _invalid(name, f"Expected string, received {_kind(value)}")


def _number(q: dict[str, Any], name: str, default: int) -> int:
    """``z.coerce.number()``: anything numeric; then the controller clamps it."""
    value = q.get(name, default)
    try:
        number = float(value) if not isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        raise _invalid(name, "Expected number, received nan") from None
    if math.isnan(number):
        raise _invalid(name, "Expected number, received nan")
    return int(number)


def _project(q: dict[str, Any], client: dict[str, Any]) -> str:
    """``getProjectId``: a read client may omit the project and may not name another one."""
    project = _string(q, "projectId") or _string(q, "project_id")
    if project:
        if client["type"] == "read" and client["projectId"] != project:
            raise _http_error(403, "You do not have access to this project")
        if project not in OPENPANEL_PROJECTS:
            raise _http_error(404, "Project not found")
        return project
    if client["projectId"]:
        return str(client["projectId"])
    raise _http_error(400, "project_id or projectId is required")


def _js_date(value: Any) -> datetime:
    """``new Date(value)``: a date alone is UTC midnight; an invalid one makes the SQL builder throw."""
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ErrorResponse(
            500, {"status": 500, "error": "RangeError", "message": "Invalid time value"}
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def handle(sbx: SandboxServer, req: Request) -> Response:
    _rate_limit(sbx, req)
    if req.method != "GET":
        raise ErrorResponse(
            404, {"message": f"Route {req.method}:{req.path} not found", "error": "Not Found"}
        )
    client = _client(req)
    if req.path == "/export/events":
        return _events(sbx, req, client)
    if req.path == "/export/charts":
        return _charts(sbx, req, client)
    raise ErrorResponse(
        404, {"message": f"Route GET:{req.path} not found", "error": "Not Found", "statusCode": 404}
    )


def _live_since(sbx: SandboxServer) -> int | None:
    """When live traffic started (ms), remembered from the first request that saw it switched on."""
    rate = float(sbx.config.openpanel_live_events_per_second)
    with sbx.lock:
        live = sbx.state["openpanel"]["live"]
        if rate <= 0:
            sbx.state["openpanel"]["live"] = None
            return None
        if live is None or live[0] != rate:
            live = sbx.state["openpanel"]["live"] = (rate, int(sbx.config.clock() * 1000))
        return int(live[1])


def _events(sbx: SandboxServer, req: Request, client: dict[str, Any]) -> Response:
    q = _query(req)
    project = _project(q, client)
    profile_id = _string(q, "profileId")
    events = _strings(q, "event", split=False)
    includes = _strings(q, "includes", split=True) or []
    if q.get("filters") not in (None, ""):
        raise _http_error(400, "filters are not implemented by the sandbox")
    take = max(min(_number(q, "limit", 50), 1000), 1)
    page = max(_number(q, "page", 1), 1)
    start, end = q.get("start"), q.get("end")
    if start not in (None, "") and end not in (None, ""):
        first, last = (
            _js_date(start).astimezone(timezone.utc).date(),
            _js_date(end).astimezone(timezone.utc).date(),
        )
    else:
        # No (or one) bound: the real server has no date filter past page 1; the sandbox has no
        # unbounded history, so it serves the last 30 days.
        last = datetime.fromtimestamp(sbx.config.clock(), tz=timezone.utc).date()
        first = last - timedelta(days=29)
    total, data = openpanel_page(
        sbx.config, project, first, last, events, profile_id, includes, page, take, _live_since(sbx)
    )
    meta = {"count": len(data), "totalCount": total, "pages": math.ceil(total / take), "current": page}
    return json_response(200, {"meta": meta, "data": data})


# -- API: /export/charts -----------------------------------------------------------------------------
def _json_list(q: dict[str, Any], name: str) -> list[Any] | None:
    value = q.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid(name, f"Expected array, received {_kind(value)}")
    return value


def _chart_events(raw: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict):
            raise _invalid(f"events/{i}", f"Expected object, received {_kind(ev)}")
        if not isinstance(ev.get("name"), str):
            raise _invalid(f"events/{i}/name", "Required")
        segment = ev.get("segment", "event")
        if segment not in SEGMENTS:
            raise _invalid(f"events/{i}/segment", f"Invalid enum value. Expected {' | '.join(SEGMENTS)}")
        filters = ev.get("filters", [])
        if not isinstance(filters, list):
            raise _invalid(f"events/{i}/filters", f"Expected array, received {_kind(filters)}")
        for j, item in enumerate(filters):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _invalid(f"events/{i}/filters/{j}/name", "Required")
            if item.get("operator") not in OPERATORS:
                raise _invalid(f"events/{i}/filters/{j}/operator", "Invalid enum value")
            if not isinstance(item.get("value"), list):
                raise _invalid(f"events/{i}/filters/{j}/value", "Expected array")
        out.append(
            {"name": ev["name"], "segment": segment, "property": ev.get("property"), "filters": filters}
        )
    return out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ErrorResponse(
            500, {"status": 500, "error": "Error", "message": f"Invalid time zone {name}"}
        ) from None


def range_window(name: str, now: float, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``getDatesFromRange`` in the organization's zone (ends are 'end of day + 1 ms', whole seconds)."""
    local = datetime.fromtimestamp(now, tz=zone)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    minute = local.replace(second=0, microsecond=0)
    if name in ("30min", "lastHour", "last24h"):
        back = {"30min": timedelta(minutes=30), "lastHour": timedelta(hours=1), "last24h": timedelta(days=1)}
        return minute - back[name], minute + timedelta(seconds=59)
    if name == "today":
        return today, tomorrow - timedelta(seconds=1)
    if name == "yesterday":
        return today - timedelta(days=1), today - timedelta(seconds=1)
    month1 = today.replace(day=1)
    if name == "lastMonth":
        prev = (month1 - timedelta(days=1)).replace(day=1)
        return prev, month1
    if name == "lastYear":
        year1 = today.replace(month=1, day=1)
        return year1.replace(year=year1.year - 1), year1 - timedelta(seconds=1)
    starts = {
        "7d": today - timedelta(days=7),
        "3m": today - timedelta(days=91),
        "6m": today - timedelta(days=182),
        "12m": (today - timedelta(days=365)).replace(day=1),
        "monthToDate": month1,
        "yearToDate": today.replace(month=1, day=1),
    }
    return starts.get(name, today - timedelta(days=30)), tomorrow


def _chart_bound(value: Any, zone: ZoneInfo) -> datetime:
    """``DateTime.fromISO(x).setZone(tz)`` to seconds: naive text is the server's zone (UTC)."""
    return _js_date(value).astimezone(zone).replace(microsecond=0)


def _charts(sbx: SandboxServer, req: Request, client: dict[str, Any]) -> Response:
    q = _query(req)
    project = _project(q, client)
    raw = _json_list(q, "series")
    if raw is None:
        raw = _json_list(q, "events") or []
    events = _chart_events(raw)
    breakdowns = _json_list(q, "breakdowns") or []
    for i, b in enumerate(breakdowns):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise _invalid(f"breakdowns/{i}/name", "Required")
    interval = q.get("interval", "day")
    if interval not in INTERVALS:
        raise _invalid("interval", f"Invalid enum value. Expected {' | '.join(INTERVALS)}")
    rng = q.get("range", "30d")
    if rng not in RANGES:
        raise _invalid("range", f"Invalid enum value. Expected {' | '.join(RANGES)}")
    previous = q.get("previous", False)
    if not isinstance(previous, bool):
        raise _invalid("previous", f"Expected boolean, received {_kind(previous)}")
    zone = _zone(sbx.config.openpanel_timezone)
    start_raw, end_raw = q.get("startDate"), q.get("endDate")
    for name, value in (("startDate", start_raw), ("endDate", end_raw)):
        if value is not None and not isinstance(value, str):
            raise _invalid(name, f"Expected string, received {_kind(value)}")
    start = _chart_bound(start_raw, zone) if start_raw else None
    end = _chart_bound(end_raw, zone) if end_raw else None
    if start is None or end is None:
        # getChartStartEndDate: a start alone is ignored; an end alone keeps the range's start.
        range_start, range_end = range_window(rng, sbx.config.clock(), zone)
        start, end = (range_start, end) if start is None and end is not None else (range_start, range_end)
    cap = sbx.config.openpanel_subscription_chart_end
    if cap is not None:  # getOrganizationSubscriptionChartEndDate
        end = min(end, datetime.fromtimestamp(float(cap), tz=zone).replace(microsecond=0))
    as_of = sbx.config.clock() if openpanel_late_on(sbx.config) else None
    body = openpanel_chart(
        sbx.config,
        project,
        events,
        breakdowns,
        interval,
        start,
        end,
        previous,
        sbx.config.openpanel_timezone,
        as_of,
    )
    return json_response(200, body)
