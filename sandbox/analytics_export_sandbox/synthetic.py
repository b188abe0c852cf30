"""Building blocks of every API's synthetic data: seeded hashes, timestamps spread over a day, dates.

Each API module generates its rows as a pure function of the config's seed/volume knobs and the
request, built from these pieces, so tests can compute exactly what the server serves and compare
row by row. Python's ``hash()`` and ``random`` without a seed are never used: both differ per process.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

_M64 = (1 << 64) - 1
DAY_S = 86_400
DAY_MS = 86_400_000

#: People behind identified visitors (Browsee sessions, OpenPanel profiles).
FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson")


def mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread hash of one integer (per-row randomness)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stable_hash(*parts: object) -> int:
    """Stable 64-bit hash of arbitrary printable parts (Python's hash() is salted per process)."""
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def slot_ms(day_start_ms: int, n: int, i: int, r: int) -> int:
    """Timestamp of item ``i`` of ``n`` spread over a day: strictly ordered, jittered inside its slot."""
    lo = DAY_MS * i // n
    hi = DAY_MS * (i + 1) // n
    return day_start_ms + lo + (r % (hi - lo) if hi > lo else 0)


def parse_date(value: str | date) -> date:
    """A date given as ``YYYY-MM-DD`` text, a date or a datetime (its date)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)
