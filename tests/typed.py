"""How a row of the API reads back from a csv/parquet file written to a declared schema.

Written from the schema's documented rules with the standard library only (not with the
writer's code), so a test comparing files with these rows checks the writer, not itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from airflow_provider_analytics_export.files.schemas import EXTRA_COLUMN, Schema

UTC = dt.timezone.utc


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parquet_cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "timestamp_ms":
        return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=value)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if kind == "float64":
        return float(value)
    return _json(value) if kind == "json" else value


def _csv_cell(kind: str, value: Any) -> str:
    cell = _parquet_cell(kind, value)
    if cell is None:
        return ""
    if isinstance(cell, dt.datetime):
        digits = 3 if kind == "timestamp_ms" else 6
        return cell.strftime("%Y-%m-%d %H:%M:%S.%f")[: 20 + digits] + "Z"
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() and abs(cell) < 1e15 else repr(cell)
    return str(cell)


def parquet_rows(rows: Iterable[dict[str, Any]], schema: Schema) -> list[dict[str, Any]]:
    """``rows`` as ``pyarrow.parquet.read_table(...).to_pylist()`` returns them."""
    out = []
    for row in rows:
        extra = {key: value for key, value in row.items() if key not in schema.names}
        typed = {c.name: _parquet_cell(c.kind, row.get(c.name)) for c in schema.columns}
        out.append({**typed, EXTRA_COLUMN: _json(extra) if extra else None})
    return out


def csv_rows(rows: Iterable[dict[str, Any]], schema: Schema) -> list[dict[str, str]]:
    """``rows`` as ``csv.DictReader`` reads them."""
    out = []
    for row in rows:
        extra = {key: value for key, value in row.items() if key not in schema.names}
        typed = {c.name: _csv_cell(c.kind, row.get(c.name)) for c in schema.columns}
        out.append({**typed, EXTRA_COLUMN: _json(extra) if extra else ""})
    return out
