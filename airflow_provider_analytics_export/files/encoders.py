"""Row encoders: one export page at a time into jsonl, csv or parquet bytes, counted and hashed.

:class:`~airflow_provider_analytics_export.files.writer.ExportWriter` owns the file (temp object,
atomic commit, compare-before-replace); these only turn pages of rows into a format's bytes.
``jsonl`` keeps every row as the API sent it (msgspec); with a declared
:class:`~airflow_provider_analytics_export.files.schemas.Schema`, ``csv`` and ``parquet`` have
exactly its columns and types (absent fields null, unknown ones in ``_extra``), each page turned
into Arrow columns in C; without one, the columns and types come from the first page. pyarrow is
imported only when a csv/parquet encoder is opened, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from typing import IO, Any

from airflow_provider_analytics_export.codec import dumps_lines, dumps_sorted
from airflow_provider_analytics_export.files.schemas import EXTRA_COLUMN, Column, Schema

#: A parquet row group ends at this many rows or :data:`PARQUET_ROW_GROUP_BYTES` of Arrow
#: data, whichever comes first: wide rows (nested JSON) would otherwise hold far more memory.
#: 4 MB keeps a parquet export's peak RSS within 60 MB of jsonl's (37 MB of it is pyarrow's
#: libraries) on 1M OpenPanel events (benchmarks/results.md); 16 MB measured +107 MB, 8 MB +62.
PARQUET_ROW_GROUP_ROWS = 50_000
PARQUET_ROW_GROUP_BYTES = 4 * 1024 * 1024
_NESTED = (dict, list, tuple)
log = logging.getLogger(__name__)


def encode_value(value: Any) -> Any:
    """Flatten one value for a tabular format: nested values become compact, key-sorted JSON."""
    if isinstance(value, _NESTED):
        return dumps_sorted(value).decode()
    return value


def encode_column(values: list[Any]) -> list[Any]:
    """:func:`encode_value` over one column; a column without nested values is returned as is.

    Checking the set of value types is done in C, so flat columns (most of them) skip a
    Python call per value.
    """
    if any(issubclass(kind, _NESTED) for kind in set(map(type, values))):
        return [encode_value(value) for value in values]
    return values


class CountingFile:
    """Binary file wrapper that counts and hashes bytes written (``bytes``; the unchanged-file check)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes = 0
        self.digest = hashlib.blake2b()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.bytes += len(data)
        self.digest.update(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:  # pyarrow asks for closed/flush/tell
        return getattr(self.raw, name)

    def tell(self) -> int:
        return self.bytes


class Encoder:
    def __init__(self, out: CountingFile) -> None:
        self.out = out

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush what the format buffers (parquet row groups and footer)."""

    def abort(self) -> None:
        """Release what the format holds on a failed export (its file is deleted next)."""


class _JsonlEncoder(Encoder):
    """Rows exactly as the API sent them: no declared columns added, none removed."""

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.out.write(dumps_lines(rows))


class _InferredEncoder(Encoder):
    """csv/parquet without a schema: the columns are the first page's fields."""

    columns: list[str] | None = None

    def check_columns(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Fix the columns from the first page; a later unknown field is an error, not a silent drop."""
        if self.columns is None:
            self.columns = list(dict.fromkeys(key for row in rows for key in row))
        known = set(self.columns)
        for row in rows:
            extra = [key for key in row if key not in known]
            if extra:
                raise ValueError(
                    f"Row has fields {extra} that are not among the output columns {self.columns}; "
                    "a csv/parquet file without a declared schema keeps the columns of its first page."
                )
        return self.columns


class _InferredCsvEncoder(_InferredEncoder):
    header_written = False

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        columns = self.check_columns(rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not self.header_written:
            writer.writerow(columns)
            self.header_written = True
        writer.writerows([encode_value(row.get(column)) for column in columns] for row in rows)
        self.out.write(buffer.getvalue().encode())


class _InferredParquetEncoder(_InferredEncoder):
    """Buffers one row group column by column; the first row group's types are the file's."""

    def __init__(self, out: CountingFile) -> None:
        super().__init__(out)
        self.pending: dict[str, list[Any]] = {}
        self.pending_rows = 0
        self.schema: Any = None
        self.writer: Any = None

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        columns = self.check_columns(rows)
        for column in columns:
            self.pending.setdefault(column, []).extend(encode_column([row.get(column) for row in rows]))
        self.pending_rows += len(rows)
        if self.pending_rows >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending_rows:
            return
        names = list(self.pending)
        arrays = [self.pending.pop(name) for name in names]
        self.pending_rows = 0
        try:
            if self.schema is None:
                table = pa.Table.from_arrays(arrays, names=names)
                # A column that is all null in the first row group is typed string, not null.
                self.schema = pa.schema(
                    [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
                )
                table = table.cast(self.schema)
                self.writer = pq.ParquetWriter(self.out, self.schema)
            else:
                table = pa.Table.from_arrays(arrays, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"Rows do not fit the parquet schema of the first row group ({exc}).") from None
        del arrays
        self.writer.write_table(table, row_group_size=PARQUET_ROW_GROUP_ROWS)

    def close(self) -> None:
        self._flush()
        if self.writer is None:  # no rows at all: still write a valid, empty file
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(self.out, pa.schema([]))
        self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()


class _Pages:
    """Turns pages of rows into Arrow record batches of one declared :class:`Schema`.

    The flat columns are converted in one C call per page (``pyarrow.array`` of the rows as
    a struct); only ``json`` columns and ``_extra`` take Python work per value. Every page
    is checked to fit: a fraction in an int64 column, text in a number column or a timestamp
    without zone fails the export naming the column, never truncates it.
    """

    def __init__(self, schema: Schema, where: str) -> None:
        import pyarrow as pa

        self.schema = schema
        self.where = where
        self.arrow = schema.arrow()
        self.known = set(schema.names)
        self.unknown_seen: set[str] = set()
        self.flat = [c for c in schema.columns if c.kind != "json"]
        # ISO-8601 strings are read as text, then parsed by pyarrow.compute in one call.
        self.struct = pa.struct(
            [(c.name, pa.string() if c.kind == "timestamp" else c.arrow_type()) for c in self.flat]
        )
        self.ints = [c.name for c in self.flat if c.kind == "int64"]
        self.int_shadow = pa.struct([(name, pa.float64()) for name in self.ints])

    def batch(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            flat = pa.array(rows, type=self.struct)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            raise self._misfit(rows) from None
        self._check_ints(rows, flat)
        columns: dict[str, Any] = {}
        for index, column in enumerate(self.flat):
            values = flat.field(index)
            if column.kind == "timestamp":
                try:
                    values = pc.cast(values, column.arrow_type())
                except pa.ArrowException as exc:
                    raise self._error(column, f"expects ISO-8601 text with Z or an offset ({exc})") from None
            columns[column.name] = values
        for column in self.schema.columns:
            if column.kind == "json":
                columns[column.name] = _json_array([row.get(column.name) for row in rows])
        columns[EXTRA_COLUMN] = _json_array(self._extra(rows))
        return pa.RecordBatch.from_arrays([columns[f.name] for f in self.arrow], schema=self.arrow)

    def _check_ints(self, rows: Sequence[Mapping[str, Any]], flat: Any) -> None:
        """pyarrow turns 4.5 into int64 4 without a word: compare with a float64 reading."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.ints:
            return
        try:
            shadow = pa.array(rows, type=self.int_shadow)
        except pa.ArrowInvalid:  # an int beyond 2**53 has no exact float: check in Python
            for name in self.ints:
                self._exact_ints(name, [row.get(name) for row in rows])
            return
        for index, name in enumerate(self.ints):
            as_int = pc.cast(flat.field(name), pa.float64())
            if pc.all(pc.equal(as_int, shadow.field(index))).as_py() not in (True, None):
                self._exact_ints(name, [row.get(name) for row in rows])

    def _exact_ints(self, name: str, values: list[Any]) -> None:
        for value in values:
            if isinstance(value, float) and not value.is_integer():
                column = next(c for c in self.flat if c.name == name)
                raise self._error(column, f"got {value!r}: a fraction (declare the column float64)")

    def _extra(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Per row, the fields the schema lacks (an object), or None; each new field logged once."""
        unknown = set().union(*rows) - self.known
        if not unknown:
            return [None] * len(rows)
        new = unknown - self.unknown_seen
        if new:
            self.unknown_seen |= new
            log.warning(
                "Fields %s are not among the declared columns of %s; kept in the %r column.",
                sorted(new),
                self.where,
                EXTRA_COLUMN,
            )
        return [{key: row[key] for key in unknown if key in row} or None for row in rows]

    def _misfit(self, rows: Sequence[Mapping[str, Any]]) -> ValueError:
        """The error for a page that does not convert: find the first column and value that do not fit."""
        import pyarrow as pa

        for column in self.flat:
            kind = pa.string() if column.kind == "timestamp" else column.arrow_type()
            for value in (row.get(column.name) for row in rows):
                try:
                    pa.array([value], type=kind)
                except (pa.ArrowException, OverflowError, TypeError, ValueError):
                    shown = repr(value)[:60]
                    return self._error(column, f"got {type(value).__name__} {shown}")
        return ValueError(f"Rows of {self.where} do not fit the declared schema {self.schema.name!r}.")

    def _error(self, column: Column, detail: str) -> ValueError:
        return ValueError(
            f"Column {column.name!r} of schema {self.schema.name!r} is declared {column.type_name}: "
            f"{detail}. Nothing was written to {self.where}."
        )


def _json_array(values: list[Any]) -> Any:
    """A string array of compact, key-sorted JSON texts (null stays null)."""
    import pyarrow as pa

    return pa.array([None if value is None else dumps_sorted(value) for value in values], pa.string())


class _TypedCsvEncoder(Encoder):
    """csv of the schema's columns: header once (also for no rows), cells written by pyarrow."""

    def __init__(self, out: CountingFile, pages: _Pages) -> None:
        super().__init__(out)
        self.pages = pages
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(pages.arrow.names)
        self.out.write(buffer.getvalue().encode())

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        import pyarrow.csv as pa_csv

        buffer = io.BytesIO()
        options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        pa_csv.write_csv(self.pages.batch(rows), buffer, options)
        self.out.write(buffer.getvalue())


class _TypedParquetEncoder(Encoder):
    """parquet of the schema's columns; a row group ends at a row or a byte bound."""

    def __init__(self, out: CountingFile, pages: _Pages) -> None:
        import pyarrow.parquet as pq

        super().__init__(out)
        self.pages = pages
        self.pending: list[Any] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.writer = pq.ParquetWriter(out, pages.arrow)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        batch = self.pages.batch(rows)
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= PARQUET_ROW_GROUP_ROWS or self.pending_bytes >= PARQUET_ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pending_rows:
            table = pa.Table.from_batches(self.pending, schema=self.pages.arrow)
            self.writer.write_table(table, row_group_size=self.pending_rows)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _load_pyarrow() -> None:
    """Import pyarrow, by default with malloc as its memory pool when it is loaded here.

    pyarrow's default jemalloc pool (which Arrow's C++ parquet writer always uses) held ~25 MB
    more at a parquet export's peak than malloc did (benchmarks/results.md). Only Arrow's own
    switch can change that pool, and only before pyarrow loads; pyarrow loads lazily, here, in
    a task process that writes csv/parquet. An explicit ``ARROW_DEFAULT_MEMORY_POOL`` wins.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    import pyarrow  # noqa: F401


def open_encoder(fmt: str, out: CountingFile, schema: Schema | None, where: str) -> Encoder:
    if fmt == "jsonl":
        return _JsonlEncoder(out)
    _load_pyarrow()
    if schema is None:
        return _InferredCsvEncoder(out) if fmt == "csv" else _InferredParquetEncoder(out)
    pages = _Pages(schema, where)
    return _TypedCsvEncoder(out, pages) if fmt == "csv" else _TypedParquetEncoder(out, pages)
