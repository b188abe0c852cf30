"""Counting and checking the records of an export file as its bytes stream past (csv, json, ndjson).

A file copied byte for byte from an API (Sealmetrics downloads, Peer5's CSV) is never parsed
into rows, yet its row count must be reported and reconciled: the counters here do it chunk by
chunk, with constant memory.
"""

from __future__ import annotations

import json
from typing import Any

#: Record layouts a :class:`RecordCounter` reads.
RECORD_FORMATS = ("csv", "json", "ndjson")


class MalformedRecordsError(ValueError):
    """The file's records are not well-formed: the file's fault, told apart from its destination's."""


class RecordCounter:
    """Counts and checks the records of an export file chunk by chunk, without holding it.

    CSV: newlines outside quotes, minus the header (a doubled quote toggles twice, so quote
    parity stays exact). JSON: every item of the top-level array must be an object, parsed
    incrementally by ijson (C backend), so a broken or truncated document is caught.
    ndjson: one object per line, only one line held at a time.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.newlines = 0
        self.in_quotes = False
        self.last_byte = b""
        self.objects = 0
        self._tail = b""
        self._items: list[Any] = []
        self._parser: Any = None
        if fmt == "json":
            import ijson

            self._items = ijson.sendable_list()
            self._parser = ijson.items_coro(self._items, "item", use_float=True)

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk; raises ValueError when the records are not well-formed."""
        if not chunk:
            return
        if self.fmt == "csv":
            self._feed_csv(chunk)
        elif self.fmt == "json":
            self._feed_json(chunk)
        else:
            lines = (self._tail + chunk).split(b"\n")
            self._tail = lines.pop()
            for line in lines:
                self._record_line(line)
        self.last_byte = chunk[-1:]

    def finish(self) -> None:
        """The file ended: a JSON document must be complete; the last ndjson line is checked."""
        if self.fmt == "json":
            import ijson

            try:
                self._parser.close()
            except ijson.JSONError as exc:
                raise MalformedRecordsError(f"the JSON array is incomplete or malformed ({exc})") from None
            self._take_items()
        elif self.fmt == "ndjson":
            self._record_line(self._tail)
            self._tail = b""

    def _feed_csv(self, chunk: bytes) -> None:
        if not self.in_quotes and b'"' not in chunk:
            self.newlines += chunk.count(b"\n")
            return
        for index, part in enumerate(chunk.split(b'"')):
            if index:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes:
                self.newlines += part.count(b"\n")

    def _feed_json(self, chunk: bytes) -> None:
        import ijson

        try:
            self._parser.send(chunk)
        except ijson.JSONError as exc:
            raise MalformedRecordsError(f"the JSON array is malformed ({exc})") from None
        self._take_items()

    def _take_items(self) -> None:
        for item in self._items:
            if not isinstance(item, dict):
                raise MalformedRecordsError(f"record {self.objects + 1} of the JSON array is not an object")
            self.objects += 1
        del self._items[:]

    def _record_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            record = json.loads(line)
        except ValueError:
            raise MalformedRecordsError(f"ndjson line {self.objects + 1} is not JSON") from None
        if not isinstance(record, dict):
            raise MalformedRecordsError(f"ndjson line {self.objects + 1} is not a JSON object")
        self.objects += 1

    @property
    def rows(self) -> int:
        if self.fmt != "csv":
            return self.objects
        lines = self.newlines + (1 if self.last_byte not in (b"", b"\n") else 0)
        return max(0, lines - 1)
