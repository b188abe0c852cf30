"""Stream rows, or a file an API encoded itself, into any ObjectStoragePath, atomically.

Rows go page by page into a temporary object next to the destination; only when the
export finished without error is it moved over the destination. Readers therefore see
the complete previous file or the complete new one, never a partial file. A re-run of the
same window replaces the file only when its bytes differ: an unchanged partition keeps its
object (and its modification time), so revisiting settled windows rewrites nothing.

How pages become bytes of each format (jsonl as sent; csv/parquet by a declared schema) is
:mod:`~airflow_provider_analytics_export.files.encoders`; this module owns the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import logging
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_analytics_export.files.counters import RECORD_FORMATS, RecordCounter
from airflow_provider_analytics_export.files.encoders import CountingFile, Encoder, open_encoder
from airflow_provider_analytics_export.files.schemas import Schema

#: Formats rows are written in (:meth:`ExportWriter.write_rows`).
FORMATS = ("jsonl", "csv", "parquet")
#: Formats a writer's file may have: rows, or a copied file (:meth:`ExportWriter.copy`).
FILE_FORMATS = tuple(dict.fromkeys((*FORMATS, *RECORD_FORMATS)))
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".json": "json"}
#: A sibling temp object untouched for this long belongs to a run that was killed; younger ones
#: may belong to a run of the same destination that is still writing, and are left alone.
STALE_TEMP_AGE = dt.timedelta(days=1)
#: Bytes read at a time when an existing destination is compared with a finished export or counted.
COMPARE_CHUNK = 1024 * 1024
#: The random part of a temp object's name: ``.<name>.<12 hex digits>.partial``.
_TEMP_ID = re.compile(r"[0-9a-f]{12}")
log = logging.getLogger(__name__)


def resolve_format(destination: str, output_format: str | None, allowed: Sequence[str] = FORMATS) -> str:
    """The output format: explicit ``output_format``, else the destination's suffix."""
    if output_format:
        fmt = output_format.lower().lstrip(".")
        if fmt not in allowed:
            raise ValueError(
                f"output_format={output_format!r} is not supported; use one of {', '.join(allowed)}."
            )
        return fmt
    suffix = "." + destination.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower() if "." in destination else ""
    fmt = _SUFFIXES.get(suffix, "")
    if fmt not in allowed:
        raise ValueError(
            f"Cannot tell the output format of destination={destination!r}: end it with one of "
            f"{', '.join('.' + f for f in allowed)} or pass output_format= (one of {', '.join(allowed)})."
        )
    return fmt


def _temp_name(name: str, temp_id: str) -> str:
    return f".{name}.{temp_id}.partial"


def _is_temp_of(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a temp object name of destination ``name``."""
    prefix, suffix = f".{name}.", ".partial"
    if not (candidate.startswith(prefix) and candidate.endswith(suffix)):
        return False
    return _TEMP_ID.fullmatch(candidate[len(prefix) : -len(suffix)]) is not None


def _age(fs: Any, path: str) -> dt.timedelta | None:
    """How long ago ``path`` was last modified, or None when the store cannot say."""
    try:
        modified = fs.modified(path)
    except Exception:  # NotImplementedError on stores without it, or a vanished object
        return None
    if modified.tzinfo is None:  # a store reporting naive times reports UTC
        modified = modified.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc) - modified


class ExportWriter:
    """Context manager that streams an export into ``destination`` atomically.

    A writer holds one file: rows, with :meth:`write_rows` once per page (the page is all
    that is held in memory, plus one parquet row group), or a file the API already encoded
    (csv passthrough, downloads), with one :meth:`copy`. On success the temporary object
    replaces the destination; on any exception it is deleted and the destination is left
    untouched. Temp objects of the same destination left by a killed run are removed on commit.
    ``rows`` is only ever counted here, never set by a caller.

    A destination that already holds exactly the finished bytes is left alone (sizes first, then
    the existing object streamed against a hash of what was written): after the ``with`` block,
    :attr:`replaced` says whether the destination changed and :attr:`rows_before` how many
    records it held before (None when it did not exist, or its records could not be read). Two
    writers of one destination each commit a complete file; the last commit wins.

    :param destination: URL or ObjectStoragePath (``file://``, ``s3://``, ``memory://`` ...).
    :param output_format: ``jsonl``, ``csv`` or ``parquet`` for rows (a copy may also be
        ``json`` or ``ndjson``); default from the suffix.
    :param conn_id: Airflow connection for the destination's storage (e.g. an ``aws`` connection).
    :param schema: the export's declared columns and types. csv/parquet files then have exactly
        these columns (a row missing one gets null), then ``_extra`` with the fields the schema
        does not know (logged once each), so nothing is dropped and an API adding a field fails
        no export. jsonl rows stay as sent. Default: the fields of the first page, and a later
        unknown field is an error in csv/parquet.
    :param stale_temp_age: how long a sibling temp object must have been untouched before a
        commit removes it as a killed run's leftover.
    """

    def __init__(
        self,
        destination: str | ObjectStoragePath,
        output_format: str | None = None,
        conn_id: str | None = None,
        schema: Schema | None = None,
        stale_temp_age: dt.timedelta = STALE_TEMP_AGE,
    ) -> None:
        self.path = (
            destination
            if isinstance(destination, ObjectStoragePath)
            else ObjectStoragePath(destination, conn_id=conn_id)
        )
        # A format the caller already resolved is taken as is; only a missing one is looked up.
        self.format = (
            output_format
            if output_format in FILE_FORMATS
            else resolve_format(str(self.path), output_format, FILE_FORMATS)
        )
        self.stale_temp_age = stale_temp_age
        self.schema = schema
        self.tmp_path = self.path.parent / _temp_name(self.path.name, uuid.uuid4().hex[:12])
        self._rows = 0
        self._copied = False
        self._file: IO[bytes] | None = None
        self._out: CountingFile | None = None
        self._encoder: Encoder | None = None
        #: After a successful ``with``: whether it was written (False: it held these bytes already).
        self.replaced: bool | None = None
        #: After a successful ``with``: records in the destination before, None if it did not exist.
        self.rows_before: int | None = None

    def __enter__(self) -> ExportWriter:
        # The objects that exist now (Airflow's, the provider's: millions) are left out of the
        # garbage collector's full passes until the export ends. Each page is tens of thousands
        # of new containers; every pass would otherwise walk them all again: ~40 % of the CPU of
        # a 1M-event export (benchmarks/results.md). Unfrozen on exit, like Airflow's executor;
        # frozen last, so a failed open (no __exit__ then) cannot leave the process frozen.
        if self.path.protocol in ("", "file", "local"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.tmp_path.open("wb")
        self._out = CountingFile(self._file)
        gc.freeze()
        return self

    @property
    def rows(self) -> int:
        """Records written so far: rows given to :meth:`write_rows`, or those :meth:`copy` counted."""
        return self._rows

    def _open_out(self, method: str) -> CountingFile:
        if self._out is None:
            raise RuntimeError(f"{method}() needs an open writer (use `with ExportWriter(...)`).")
        if self._copied:
            raise RuntimeError(
                f"{method}() after copy(): a writer holds one file, copied or written as rows."
            )
        return self._out

    def _row_encoder(self) -> Encoder:
        """The encoder of :attr:`format`, made on the first page (or at the end, for a file without rows)."""
        out = self._open_out("write_rows")
        if self._encoder is None:
            if self.format not in FORMATS:
                raise ValueError(
                    f"output_format={self.format!r} is only for a copied file; rows are written as "
                    f"{', '.join(FORMATS)}."
                )
            self._encoder = open_encoder(self.format, out, self.schema, self.uri)
        return self._encoder

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append one page of rows; returns how many were written."""
        encoder = self._row_encoder()
        page = rows if isinstance(rows, list) else list(rows)
        if page:
            encoder.write(page)
            self._rows += len(page)
        return len(page)

    def copy(self, chunks: Iterable[bytes], record_format: str) -> int:
        """Write a file the API encoded itself, byte for byte, counting its records as they pass.

        Returns the count, which becomes the summary's ``rows`` (csv: records outside quotes,
        header excluded; json: items of the top-level array; ndjson: lines), and
        ``record_format`` becomes its ``format``. Records that are not well-formed raise
        ValueError; raised inside the ``with`` block, that leaves the destination untouched, as
        does a caller raising after comparing the count with the API's own. Call it once.

        :param chunks: the file's bytes, in order, in chunks of any size.
        :param record_format: how to read its records: ``csv``, ``json`` or ``ndjson``.
        """
        out = self._open_out("copy")
        if self._encoder is not None:
            raise RuntimeError(
                "copy() after write_rows(): a writer holds one file, copied or written as rows."
            )
        if record_format not in RECORD_FORMATS:
            raise ValueError(
                f"record_format={record_format!r} is not supported; use one of {', '.join(RECORD_FORMATS)}."
            )
        self._copied = True
        self.format = record_format
        counter = RecordCounter(record_format)
        for chunk in chunks:
            out.write(chunk)
            counter.feed(chunk)
        counter.finish()
        self._rows = counter.rows
        return self._rows

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gc.unfreeze()
        try:
            if exc_type is None and not self._copied:
                self._row_encoder().close()  # a file without rows still gets its header/footer
        except BaseException:
            self._discard()
            raise
        if self._file is not None:
            self._file.close()
        if exc_type is None:
            if self._unchanged():
                self.replaced, self.rows_before = False, self._rows
                log.info("%s already holds these %d records: left unchanged.", self.uri, self._rows)
                self._discard()
                return
            self._commit()
            self.replaced = True
            self._remove_stale_temps()
        else:
            self._discard()

    def _unchanged(self) -> bool:
        """Whether the destination exists with exactly the bytes written; else note its record count.

        Size first (one metadata call), then the existing object streamed against the hash taken
        while writing; memory stays one chunk. Best effort: a store that cannot say counts as changed.
        """
        fs = self.path.fs
        with contextlib.suppress(Exception):
            fs.invalidate_cache(self.path.path)  # another run may have committed since we listed
        try:
            size = fs.size(self.path.path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            log.warning("Could not read the size of %s to compare it: %s", self.uri, exc)
            return False
        written = self._out.digest if self._out else hashlib.blake2b()
        if size == self.bytes:
            existing = hashlib.blake2b()
            try:
                with fs.open(self.path.path, "rb") as old:
                    while chunk := old.read(COMPARE_CHUNK):
                        existing.update(chunk)
            except Exception as exc:
                log.warning("Could not read %s to compare it: %s", self.uri, exc)
                return False
            if existing.digest() == written.digest():
                return True
        self.rows_before = self._count_existing()
        return False

    def _count_existing(self) -> int | None:
        """Records of the current destination, in this writer's format (None if they cannot be read)."""
        fs = self.path.fs
        try:
            with fs.open(self.path.path, "rb") as old:
                if self.format == "parquet":
                    import pyarrow.parquet as pq

                    return int(pq.ParquetFile(old).metadata.num_rows)
                if self.format == "jsonl":
                    lines, last = 0, b"\n"
                    while chunk := old.read(COMPARE_CHUNK):
                        lines, last = lines + chunk.count(b"\n"), chunk[-1:]
                    return lines + (last != b"\n")
                counter = RecordCounter(self.format)
                while chunk := old.read(COMPARE_CHUNK):
                    counter.feed(chunk)
                counter.finish()
                return counter.rows
        except Exception as exc:
            log.warning("Could not count the records %s held before: %s", self.uri, exc)
            return None

    def _commit(self) -> None:
        """Move the finished temp object over the destination.

        Local files use an atomic rename. Object stores have no rename: a server-side copy
        publishes the complete object in one step, then the temp object is removed.
        ``cp_file`` is used rather than ``mv`` because ``mv`` expands glob characters.
        """
        fs = self.tmp_path.fs
        if self.path.protocol in ("", "file", "local"):
            fs.mv(self.tmp_path.path, self.path.path)
        else:
            fs.cp_file(self.tmp_path.path, self.path.path)
            fs.rm_file(self.tmp_path.path)

    def _remove_stale_temps(self) -> None:
        """Delete the temp objects of this destination that a killed run left behind.

        No code runs on SIGKILL, so a killed export leaves its ``.<name>.<hex>.partial``; the
        next successful commit of the same destination removes it once it has been untouched
        for ``stale_temp_age``. A younger temp may be a concurrent run's (a zombie task still
        writing), and deleting it would fail that run at its commit. Only exact
        ``.<name>.<12 hex>.partial`` siblings match (never another destination's temp, e.g.
        of ``<name>.x``); the parent is listed and filtered here, not globbed, as the name may
        hold glob characters. A store that cannot tell an object's age keeps it. Best effort:
        the export is already committed.
        """
        fs = self.path.fs
        try:
            fs.invalidate_cache(self.path.parent.path)  # a killed process's temp is not in our cache
            siblings = fs.ls(self.path.parent.path, detail=False)
        except Exception as exc:
            log.warning("Could not list %s to remove stale temp objects: %s", self.path.parent, exc)
            return
        for sibling in siblings:
            name = posixpath.basename(str(sibling).rstrip("/"))
            if name == self.tmp_path.name or not _is_temp_of(name, self.path.name):
                continue
            age = _age(fs, sibling)
            if age is None or age < self.stale_temp_age:
                log.info(
                    "Leaving %s: it may belong to a run of %s that is still writing.", name, self.path.name
                )
                continue
            log.info("Removing %s, left %s ago by an earlier run that was killed.", name, age)
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(sibling)

    def _discard(self) -> None:
        if self._encoder is not None:
            self._encoder.abort()
        if self._file is not None and not self._file.closed:
            # Closing a half-written remote file can fail; it is deleted just below anyway.
            with contextlib.suppress(Exception):
                self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.fs.rm_file(self.tmp_path.path)

    @property
    def bytes(self) -> int:
        return self._out.bytes if self._out else 0

    def summary(self) -> dict[str, Any]:
        """The small XCom-friendly result: ``{"uri", "rows", "bytes", "format"}``, and ``schema``.

        After a committed ``with`` block also ``replaced`` and ``rows_before`` (see the class).

        ``schema``, only for a writer given one, lists the csv/parquet file's columns and Arrow
        types; it is None for jsonl, whose rows are as the API sent them.
        """
        summary: dict[str, Any] = {
            "uri": self.uri,
            "rows": self._rows,
            "bytes": self.bytes,
            "format": self.format,
        }
        if self.schema is not None:
            summary["schema"] = self.schema.describe() if self.format in ("csv", "parquet") else None
        if self.replaced is not None:
            summary["replaced"] = self.replaced
            summary["rows_before"] = self.rows_before
        return summary

    @property
    def uri(self) -> str:
        """The destination URL without the connection id ObjectStoragePath puts in its ``str``."""
        protocol = self.path.protocol or "file"
        if protocol in ("file", "local"):
            return f"file://{self.path.path}"
        return f"{protocol}://{self.path.path.lstrip('/')}"
