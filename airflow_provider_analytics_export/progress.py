"""Progress lines a person can watch: every ~10 s or 10 %, never one line per page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class _Log(Protocol):
    """Anything with ``info``: a stdlib logger or the structlog logger Airflow gives tasks."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ExportProgress:
    """Counts pages and rows (or bytes) and logs rate and ETA at a readable cadence.

    :param log: the logger of the task or hook.
    :param label: what is being exported, e.g. ``"OpenPanel events"``.
    :param unit: ``"rows"`` or ``"bytes"`` (bytes are shown in MB and MB/s).
    """

    def __init__(
        self,
        log: _Log,
        label: str,
        unit: str = "rows",
        every_seconds: float = 10.0,
        every_fraction: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.label = label
        self.unit = unit
        self.every_seconds = every_seconds
        self.every_fraction = every_fraction
        self.clock = clock
        self.started = clock()
        self.pages = 0
        self.amount = 0
        self.total_pages: int | None = None
        self.total_amount: int | None = None
        self._last_time = self.started
        self._last_fraction = 0.0

    def update(
        self, amount: int, pages: int = 1, total_pages: int | None = None, total: int | None = None
    ) -> None:
        """Record progress; log when 10 s or 10 % passed since the last line."""
        self.pages += pages
        self.amount += amount
        self.total_pages = total_pages if total_pages is not None else self.total_pages
        self.total_amount = total if total is not None else self.total_amount
        now = self.clock()
        fraction = self.fraction()
        if now - self._last_time >= self.every_seconds or (
            fraction is not None and fraction - self._last_fraction >= self.every_fraction and fraction < 1
        ):
            self._last_time = now
            self._last_fraction = fraction or 0.0
            self.log.info("%s", self.describe(now))

    def fraction(self) -> float | None:
        if self.total_pages:
            return min(1.0, self.pages / self.total_pages)
        if self.total_amount:
            return min(1.0, self.amount / self.total_amount)
        return None

    def describe(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or self.clock()) - self.started)
        rate = self.amount / elapsed
        if self.unit == "bytes":
            done, speed = f"{self.amount / 1e6:,.1f} MB", f"{rate / 1e6:,.1f} MB/s"
        else:
            done, speed = f"{self.amount:,} {self.unit}", f"{rate:,.0f} {self.unit}/s"
        parts = [self.label + ":"]
        if self.total_pages:
            parts.append(f"page {self.pages:,} of {self.total_pages:,},")
        parts.append(f"{done}, {speed}")
        fraction = self.fraction()
        if fraction:
            parts.append(f"({fraction:.0%}, ETA {_duration(elapsed / fraction - elapsed)})")
        return " ".join(parts)

    def finish(self) -> None:
        """Final line with totals, always logged."""
        self.log.info("%s done in %s", self.describe(), _duration(self.clock() - self.started))
