"""Cutting a time window into requests of whole buckets, for APIs that answer per-bucket series.

Not paging: the window is known before any request, so the requests are planned up front
within an API's per-request limits (Braze: 100 units; Peer5: buckets and range per interval).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One request's share of a window: [start, end) and the starts of the buckets in it."""

    start: dt.datetime
    end: dt.datetime
    buckets: tuple[dt.datetime, ...]


class BucketChunker:
    """Cuts a window of whole buckets into consecutive requests within an API's limits.

    Every bucket lands in exactly one chunk, so consecutive requests never ask for a bucket
    twice. Buckets need not be equal (calendar days across a DST change are 23 or 25 hours).

    :param next_bucket: the start of the bucket after the one starting at a moment.
    :param max_buckets: buckets per request at most.
    :param max_span: time per request at most (a range limit), if the API has one.
    """

    def __init__(
        self,
        next_bucket: Callable[[dt.datetime], dt.datetime],
        max_buckets: int,
        max_span: dt.timedelta | None = None,
    ) -> None:
        self.next_bucket = next_bucket
        self.max_buckets = max_buckets
        self.max_span = max_span

    def chunks(self, start: dt.datetime, end: dt.datetime) -> Iterator[Chunk]:
        """The chunks of [start, end), oldest first; ``start`` and ``end`` must be bucket boundaries."""
        buckets: list[dt.datetime] = []
        moment = start
        while moment < end:
            following = self.next_bucket(moment)
            too_long = self.max_span is not None and buckets and following - buckets[0] > self.max_span
            if len(buckets) == self.max_buckets or too_long:
                yield Chunk(buckets[0], moment, tuple(buckets))
                buckets = []
            buckets.append(moment)
            moment = following
        if buckets:
            yield Chunk(buckets[0], moment, tuple(buckets))
