"""Fake Browsee session export: the sessions it serves and POST /api/v1/export/sessions.

Sessions are a pure function of ``seed``, ``browsee_sessions_per_day`` and the day: session ``i``
of a day is computed from its index alone, so a page is O(page) and tests compute the truth with
:func:`browsee_sessions` (the half-open window) and compare row by row. The route enforces the
documented "one open request" rule per API key (a concurrent request gets 429).

Nothing beyond the doc page is known of the real service (real-services.md, Browsee), so each
open question is a ``SandboxConfig`` switch:

- does ``end`` include sessions starting within its second? ``browsee_end_inclusive``;
- does a session carry an id (``sessionId`` is undocumented)? ``browsee_session_id``;
- are empty optional fields of anonymous sessions absent rather than null? ``browsee_sparse``;
- is a session still running listed, and do its fields change later? ``browsee_running``:
  ``final`` (listed with its final fields), ``growing`` (listed from its start; duration,
  inactiveTime/activeTime, pageCount/urls and eventCount grow until it ends) or ``hidden``
  (listed once ended); with any but ``final``, no session is listed before its start;
- do sessions reach the export late? ``late_share["browsee"]``/``late_horizon["browsee"]``: a share
  of sessions is listed only from its start plus a seeded delay (late.py).

What a second concurrent request gets is open too; the sandbox answers the documented 429 only.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .credentials import CREDENTIALS
from .late import late_delay, late_on
from .server import ErrorResponse, Request, Response, json_response
from .synthetic import DAY_MS, DAY_S, FIRST_NAMES, LAST_NAMES, mix, slot_ms, stable_hash

if TYPE_CHECKING:
    from .server import SandboxServer

# -- data: the sessions ------------------------------------------------------------------------------
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
_B_TAGS = ("vip", "trial", "newsletter", "beta")
#: The longest session (ms): a session started this long ago has surely ended.
_B_MAX_DURATION_MS = 1_800_000


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
    return stable_hash("browsee", seed, day)


def _browsee_ts(seed: int, n: int, day: int, i: int) -> int:
    base = _browsee_base(seed, day)
    return slot_ms(day * DAY_MS, n, i, mix(base + i))


def browsee_session(config: SandboxConfig, day: int, i: int) -> dict[str, Any]:
    """Session ``i`` of UTC day number ``day`` (days since epoch), with every documented field."""
    n = config.browsee_sessions_per_day
    base = _browsee_base(config.seed, day)
    rr = mix(base + i)
    r = random.Random(rr)
    ts = slot_ms(day * DAY_MS, n, i, rr)
    duration = r.randint(5_000, _B_MAX_DURATION_MS)
    inactive = r.randint(0, duration // 3)
    page_count = r.randint(1, 9)
    urls = [r.choice(_B_PAGES) for _ in range(page_count)]
    device, browser, os_name = r.choice(_B_DEVICES)
    city, country = r.choice(_B_GEO)
    identified = r.random() < 0.4
    uid = r.randrange(2000)
    first, last = FIRST_NAMES[uid % len(FIRST_NAMES)], LAST_NAMES[(uid // 8) % len(LAST_NAMES)]
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


def _browsee_day_indices(
    config: SandboxConfig, day: int, start_ms: int, end_ms: int, segment_id: str | None
) -> Sequence[int]:
    """The day's session indices (of the segment) starting in [start_ms, end_ms): O(log day) a call."""
    n = config.browsee_sessions_per_day
    if n <= 0:
        return ()

    def ts_of(i: int) -> int:
        return _browsee_ts(config.seed, n, day, i)

    idx: Sequence[int] = range(n)
    if segment_id is not None:
        idx = _browsee_segment_day(config.seed, n, day, segment_id)
    return idx[bisect_left(idx, start_ms, key=ts_of) : bisect_left(idx, end_ms, key=ts_of)]


def browsee_late_on(config: SandboxConfig) -> bool:
    """Whether what is listed depends on the clock (late sessions or a running-session reading)."""
    return late_on(config, "browsee") or config.browsee_running != "final"


def _browsee_arrived(
    config: SandboxConfig, day: int, idx: Sequence[int], as_of_ms: int, segment_id: str | None
) -> Sequence[int]:
    """The sessions of ``idx`` (ascending start) listed at ``as_of_ms``.

    Each is listed from its start, a late one from start + its delay, and under ``hidden`` not
    before it ended; under ``growing`` a running one is in a segment only if what it did so far
    is (a checkout not reached yet is not). Only sessions within the longest wait of
    ``as_of_ms`` are judged one by one.
    """
    n = config.browsee_sessions_per_day
    late, hidden = late_on(config, "browsee"), config.browsee_running == "hidden"
    partial = segment_id is not None and config.browsee_running == "growing"
    horizon_ms = math.ceil(float(config.late_horizon["browsee"]) * 1000) if late else 0
    longest = max(horizon_ms, _B_MAX_DURATION_MS if hidden or partial else 0)
    base = _browsee_base(config.seed, day)

    def ts_of(i: int) -> int:
        return _browsee_ts(config.seed, n, day, i)

    def listed(i: int) -> bool:
        start = ts_of(i)
        if start + int(late_delay(config, "browsee", mix(base + i)) * 1000) > as_of_ms:
            return False
        if not (hidden or partial):
            return True
        session = browsee_session(config, day, i)
        if hidden:
            return start + session["duration"] <= as_of_ms
        assert segment_id is not None
        return BROWSEE_SEGMENTS[segment_id](_browsee_as_of(config, session, as_of_ms))

    sure = bisect_left(idx, as_of_ms - longest + 1, key=ts_of)
    if sure == len(idx):
        return idx
    upto = bisect_left(idx, as_of_ms + 1, key=ts_of)
    return [*idx[:sure], *(i for i in idx[sure:upto] if listed(i))]


def _browsee_as_of(config: SandboxConfig, session: dict[str, Any], as_of_ms: int | None) -> dict[str, Any]:
    """The session as served at ``as_of_ms``: under ``growing`` a running one shows what it did so far."""
    if as_of_ms is None or config.browsee_running != "growing":
        return session
    elapsed = as_of_ms - session["timestamp"]
    if elapsed >= session["duration"]:
        return session
    ratio = elapsed / session["duration"]
    pages = max(1, math.ceil(session["pageCount"] * ratio))
    inactive = int(session["inactiveTime"] * ratio)
    return dict(
        session,
        duration=elapsed,
        inactiveTime=inactive,
        activeTime=elapsed - inactive,
        urls=session["urls"][:pages],
        pageCount=pages,
        eventCount=pages * (session["eventCount"] // session["pageCount"]),
    )


def _browsee_windows(
    config: SandboxConfig, start_s: int, end_s: int, segment_id: str | None, as_of_ms: int | None = None
) -> Iterator[tuple[int, Sequence[int]]]:
    if segment_id is not None and segment_id not in BROWSEE_SEGMENTS:
        raise KeyError(segment_id)
    start_s = max(int(start_s), BROWSEE_DATA_START_S)
    end_s = int(end_s)
    if end_s <= start_s:
        return
    for day in range(start_s // DAY_S, (end_s - 1) // DAY_S + 1):
        idx = _browsee_day_indices(config, day, start_s * 1000, end_s * 1000, segment_id)
        yield day, idx if as_of_ms is None else _browsee_arrived(config, day, idx, as_of_ms, segment_id)


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
    as_of: float | None = None,
) -> Iterator[dict[str, Any]]:
    """All sessions with start_s <= timestamp/1000 < end_s, oldest first (KeyError: unknown segment).

    The truth of the half-open window, shaped as served (``browsee_session_id``/``browsee_sparse``)
    but never widened by ``browsee_end_inclusive``. Final (every session, ended) unless ``as_of``
    (sandbox epoch seconds) asks what was listed then.
    """
    fields = list(fields) if fields is not None else None
    as_of_ms = None if as_of is None or not browsee_late_on(config) else int(as_of * 1000)
    for day, idx in _browsee_windows(config, start_s, end_s, segment_id, as_of_ms):
        for i in idx:
            yield _select(config, _browsee_as_of(config, browsee_session(config, day, i), as_of_ms), fields)


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
    as_of_ms = int(config.clock() * 1000) if browsee_late_on(config) else None
    for day, idx in _browsee_windows(config, start_s, served_end, segment_id, as_of_ms):
        lo = max(0, offset - total)
        take = limit - len(out)
        if take > 0 and lo < len(idx):
            out.extend(
                _select(config, _browsee_as_of(config, browsee_session(config, day, i), as_of_ms), fields)
                for i in idx[lo : lo + take]
            )
        total += len(idx)
    return total, out


# -- API: POST /api/v1/export/sessions ---------------------------------------------------------------
ONE_OPEN_MESSAGE = "Only one open request allowed. Wait for the previous response."
#: The server computes an answer at arrival (its clock for late sessions read then too) and holds
#: it for the configured latency: a page then costs the latency alone, as issue 25's bound (pages x
#: latency) assumes, not the latency plus its generation in Python (about 5 ms a page). The one
#: open request is the guard's, at arrival, either way.
ANSWER_AT_ARRIVAL = True


def _fail(message: str, status: int = 400) -> ErrorResponse:
    kind = "unauthorized" if status == 401 else "failure"
    return ErrorResponse(status, {"status": kind, "message": {"error": message}})


def new_state() -> dict[str, Any]:
    return {"in_flight": {}}


def guard(sbx: SandboxServer, req: Request) -> Callable[[], None] | None:
    """Enforce the documented 'one open request' rule: a concurrent request for the same key gets 429."""
    try:
        body = req.json()
    except ValueError:
        return None
    key = body.get("apiKey") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        return None
    with sbx.lock:
        in_flight: dict[str, int] = sbx.state["browsee"]["in_flight"]
        if in_flight.get(key):
            raise ErrorResponse(
                429, {"status": "failure", "message": {"error": ONE_OPEN_MESSAGE}}, overlap=True
            )
        in_flight[key] = 1

    def release() -> None:
        with sbx.lock:
            in_flight.pop(key, None)

    return release


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"Invalid parameter '{name}': must be an integer.")
    return value


def handle(sbx: SandboxServer, req: Request) -> Response:
    if req.method != "POST":
        raise _fail("Only POST method is supported.", 405)
    try:
        body = req.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _fail("Request body must be a JSON object.")
    creds = CREDENTIALS["browsee"]
    api_key = body.get("apiKey")
    if not api_key:
        raise _fail("API Key missing.")
    if api_key != creds["api_key"]:
        raise _fail("API Key invalid.", 401)
    secret = body.get("secretKey")
    if not secret:
        raise _fail("Secret Key missing.")
    if secret != creds["secret_key"]:
        raise _fail("Secret Key invalid.", 401)

    now = int(sbx.config.clock())
    start = _int(body, "start", now - 86_400)
    end = _int(body, "end", now)
    offset = _int(body, "from", 0)
    limit = _int(body, "limit", 100)
    if start < 0 or end < 0:
        raise _fail("Invalid parameter 'start'/'end': must be Unix seconds >= 0.")
    if start > end:
        raise _fail("Invalid parameter 'start': must not be after 'end'.")
    if offset < 0:
        raise _fail("Invalid parameter 'from': must be >= 0.")
    if not 1 <= limit <= 100:
        raise _fail("Invalid parameter 'limit': must be between 1 and 100.")
    segment = body.get("segmentId")
    if segment is not None and (not isinstance(segment, str) or segment not in BROWSEE_SEGMENTS):
        raise _fail(f"Invalid segmentId: {segment!r} not found.")
    options = body.get("options")
    fields: list[str] | None = None
    if options is not None:
        if not isinstance(options, dict):
            raise _fail("Invalid parameter 'options': must be an object.")
        select = options.get("select")
        if select is not None:
            if not isinstance(select, list) or not all(isinstance(f, str) for f in select):
                raise _fail("Invalid parameter 'options.select': must be a list of field names.")
            for f in select:
                if f not in BROWSEE_FIELDS and f != "sessionId":
                    raise _fail(f"Invalid field in options.select: '{f}'.")
            fields = select
    total, data = browsee_page(sbx.config, start, end, segment, fields, offset, limit)
    return json_response(
        200, {"status": "success", "exports": {"total": total, "to": offset + len(data), "data": data}}
    )
