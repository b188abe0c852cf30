"""Declared, typed schemas of the tabular exports: the same columns and Arrow types every run.

A data lake reads a folder of daily files as one table, so a csv/parquet file must not take
its columns or types from the data it happens to hold: a day without ``email`` still has an
``email`` column, a count that is null all day is still int64, and a timestamp is a timestamp
column in UTC. Each API declares its columns beside its hook (name, kind, description); the writer
(:mod:`airflow_provider_analytics_export.files.writer`) turns every page into exactly these columns.

Kinds and how a value becomes a cell:

- ``string``, ``int64``, ``float64``, ``bool``: the JSON value as that Arrow type. A value that
  does not fit fails the export with the column named (an int column never truncates 4.5; a
  column that may hold fractions is declared ``float64``).
- ``timestamp_ms``: epoch milliseconds (a JSON number) -> ``timestamp[ms, tz=UTC]``.
- ``timestamp``: an ISO-8601 string with ``Z`` or an offset -> ``timestamp[us, tz=UTC]``.
- ``json``: any JSON value (lists, objects) as compact, key-sorted JSON text in a string column.

Fields a schema does not know go into a last ``_extra`` column (a JSON object, null when there
are none). jsonl files are not shaped by the schema: they keep each row as the API sent it.
pyarrow is imported only by :meth:`Schema.arrow`, never at import time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

#: The column that keeps fields a schema does not declare (a JSON object).
EXTRA_COLUMN = "_extra"
#: Kind -> the Arrow type name written to files and reported in the task's result.
ARROW_TYPES = {
    "string": "string",
    "int64": "int64",
    "float64": "double",
    "bool": "bool",
    "timestamp_ms": "timestamp[ms, tz=UTC]",
    "timestamp": "timestamp[us, tz=UTC]",
    "json": "string",
}


@dataclasses.dataclass(frozen=True)
class Column:
    """One declared column: its name, kind (see the module doc) and what it holds."""

    name: str
    kind: str
    description: str
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ARROW_TYPES:
            raise ValueError(
                f"Column {self.name!r}: kind={self.kind!r}; use one of {', '.join(ARROW_TYPES)}."
            )

    @property
    def type_name(self) -> str:
        """The Arrow type name (``json`` columns say so, as their Arrow type is plain string)."""
        return "string (JSON)" if self.kind == "json" else ARROW_TYPES[self.kind]

    def arrow_type(self) -> Any:
        import pyarrow as pa

        return {
            "string": pa.string(),
            "int64": pa.int64(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "timestamp_ms": pa.timestamp("ms", tz="UTC"),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "json": pa.string(),
        }[self.kind]


EXTRA = Column(EXTRA_COLUMN, "json", "Fields the schema does not declare, as a JSON object; null if none.")


@dataclasses.dataclass(frozen=True)
class Schema:
    """The ordered, declared columns of one export; ``_extra`` always comes last."""

    name: str
    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        names = [column.name for column in self.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates or EXTRA_COLUMN in names:
            raise ValueError(f"Schema {self.name!r}: columns {duplicates or [EXTRA_COLUMN]} declared twice.")

    @property
    def names(self) -> list[str]:
        """The declared column names (without ``_extra``)."""
        return [column.name for column in self.columns]

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The columns of a csv/parquet file: the declared ones, then ``_extra``."""
        return (*self.columns, EXTRA)

    def select(self, names: Iterable[str], keep: Sequence[str] = ()) -> Schema:
        """The subset a user picked (e.g. Browsee ``fields``), in the declared order, plus ``keep``."""
        wanted = {*names, *keep}
        unknown = sorted(wanted - set(self.names))
        if unknown:
            raise ValueError(f"Schema {self.name!r} has no columns {unknown}.")
        return Schema(self.name, tuple(column for column in self.columns if column.name in wanted))

    def describe(self) -> list[dict[str, str]]:
        """``[{"name", "type"}]`` of the file's columns: what the task's result reports."""
        return [{"name": column.name, "type": column.type_name} for column in self.file_columns]

    def arrow(self) -> Any:
        """The file's ``pyarrow.Schema``."""
        import pyarrow as pa

        return pa.schema([pa.field(c.name, c.arrow_type(), nullable=c.nullable) for c in self.file_columns])


def columns_of(kind: str, description: str, names: Iterable[str]) -> tuple[Column, ...]:
    """Columns of one kind whose descriptions differ only by name (``{name}`` in ``description``)."""
    return tuple(Column(name, kind, description.format(name=name)) for name in names)


def markdown(schemas: Sequence[Schema]) -> str:
    """The README's column tables, generated from the declarations (tests check they are equal)."""
    lines: list[str] = []
    for schema in schemas:
        lines += [f"**{schema.name}**", "", "| column | type | description |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type_name} | {c.description} |" for c in schema.file_columns]
        lines.append("")
    return "\n".join(lines)
