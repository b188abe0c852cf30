"""Declared, typed schemas of the tabular exports: the same columns and Arrow types every run.

A data lake reads a folder of daily files as one table, so a csv/parquet file must not take
its columns or types from the data it happens to hold: a day without ``email`` still has an
``email`` column, a count that is null all day is still int64, and a timestamp is a timestamp
column in UTC. Each export declares its columns here (name, kind, description); the writer
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


def _columns(kind: str, description: str, names: Iterable[str]) -> tuple[Column, ...]:
    return tuple(Column(name, kind, description.format(name=name)) for name in names)


#: Browsee ``export/sessions``: ``sessionId`` (sent by some accounts, undocumented) and every
#: documented ``options.select`` field, in the documented order.
BROWSEE_SESSIONS = Schema(
    "browsee_sessions",
    (
        Column("sessionId", "string", "Session id, when Browsee sends one (not a documented field)."),
        Column("userId", "string", "User ID, as provided by the identify call."),
        Column("duration", "float64", "Duration of the session, milliseconds."),
        Column("inactiveTime", "float64", "Time the user was inactive during the session, milliseconds."),
        Column("activeTime", "float64", "duration - inactiveTime, milliseconds."),
        Column("urls", "json", "URLs visited in the session (a JSON list)."),
        Column("timestamp", "timestamp_ms", "Start of the session (Browsee sends epoch milliseconds)."),
        Column("pageCount", "int64", "Number of pages visited."),
        Column("eventCount", "int64", "Number of events."),
        Column("name", "string", "Name, if provided in the identify call."),
        Column("email", "string", "Email, if provided in the identify call."),
        Column("tags", "json", "Tags, if provided in the identify call (JSON)."),
        Column("landingPage", "string", "Landing page of the session."),
        *_columns(
            "string",
            "UTM parameter {name}.",
            ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"),
        ),
        Column("browser", "string", "The user's browser."),
        Column("os", "string", "Operating system."),
        Column("device", "string", "The user's device."),
        Column("isMobile", "bool", "Whether the device is considered mobile."),
        Column("ip", "string", "IP the session came from."),
        Column("city", "string", "City detected from the IP."),
        Column("country", "string", "Country detected from the IP."),
        Column("domain", "string", "Domain the session was recorded on."),
        Column("referrer", "string", "Referrer of the session (the domain only)."),
    ),
)

#: Braze ``/sessions/data_series`` rows as the operator writes them.
BRAZE_SESSIONS = Schema(
    "braze_sessions",
    (
        Column("time", "string", "The bucket as Braze wrote it: a date, or a time maybe without offset."),
        Column("bucket_start", "timestamp", "Start of the bucket in UTC (time read in the workspace zone)."),
        Column("sessions", "int64", "Number of sessions in the bucket."),
        Column("app_id", "string", "The app_id filter of the export (null: all apps)."),
        Column("segment_id", "string", "The segment_id filter of the export (null: no segment)."),
    ),
)

#: Peer5 ``/v1/export``: every documented metric and dimension; an export selects its own.
PEER5_EXPORT = Schema(
    "peer5_export",
    (
        Column("timestamp", "timestamp_ms", "Start of the bucket (Peer5 sends epoch milliseconds, UTC)."),
        *_columns(
            "string",
            "Dimension {name} (with dimensions=[...]).",
            ("browser.name", "country.code", "city.name", "isp.name", "os.name", "session.page"),
        ),
        Column("http", "int64", "Bytes delivered over HTTP in the bucket."),
        Column("p2p", "int64", "Bytes delivered peer to peer in the bucket."),
        Column("played", "float64", "Milliseconds the player was playing."),
        Column("rebuffered", "float64", "Milliseconds the player was buffering."),
        Column("sessions", "float64", "Average number of sessions in the bucket (fractional)."),
    ),
)

#: OpenPanel ``/export/events``: every column the server can return (``transformEvent``), in
#: export order; the hook's ``INCLUDES``/``EVENT_FIELDS`` are read from here (one list).
#: ``fields``/``includes`` select a subset (``id``, ``createdAt`` always).
OPENPANEL_EVENTS = Schema(
    "openpanel_events",
    (
        *_columns(
            "string", "Event {name}.", ("id", "name", "deviceId", "profileId", "projectId", "sessionId")
        ),
        Column("createdAt", "timestamp", "When the event happened (ISO-8601 UTC)."),
        *_columns(
            "string",
            "{name} of the event.",
            ("path", "origin", "referrer", "referrerName", "referrerType", "country", "region", "city"),
        ),
        Column("longitude", "float64", "Longitude detected from the IP."),
        Column("latitude", "float64", "Latitude detected from the IP."),
        *_columns(
            "string",
            "{name} of the client.",
            (
                "os",
                "osVersion",
                "browser",
                "browserVersion",
                "device",
                "brand",
                "model",
                "sdkName",
                "sdkVersion",
            ),
        ),
        Column("revenue", "float64", "Revenue recorded with the event."),
        Column("groups", "json", "Groups of the event (JSON list)."),
        Column("properties", "json", "Event properties (JSON object; OpenPanel sends every value as text)."),
        Column("importedAt", "timestamp", "When the event was imported, if it was (includes=importedAt)."),
        Column("profile", "json", "The event's profile (includes=profile)."),
        Column("meta", "json", "The event's metadata, only for events that have one (includes=meta)."),
    ),
)


def openpanel_chart(breakdowns: Sequence[str], previous: bool) -> Schema:
    """OpenPanel ``/export/charts`` rows: one ``breakdown_<name>`` per breakdown, previous period if asked."""
    return Schema(
        "openpanel_chart",
        (
            Column("series_id", "string", "The series id."),
            Column("event", "string", "The series' event name."),
            Column("names", "json", "The series' names as OpenPanel sends them (JSON list)."),
            *_columns("string", "Breakdown value ('' when empty).", (f"breakdown_{b}" for b in breakdowns)),
            Column("date", "timestamp", "Start of the bucket (the organization's zone, stored as UTC)."),
            Column("count", "float64", "The bucket's value (an average for some metrics)."),
            *(
                (
                    Column("previous_value", "float64", "The previous period's value."),
                    Column("previous_diff", "float64", "Change from the previous period, percent."),
                    Column("previous_state", "string", "positive, negative or neutral."),
                )
                if previous
                else ()
            ),
        ),
    )


#: Every declared schema, for the README's table (a chart shown with one breakdown and previous=True).
SCHEMAS: tuple[Schema, ...] = (
    BROWSEE_SESSIONS,
    BRAZE_SESSIONS,
    PEER5_EXPORT,
    OPENPANEL_EVENTS,
    openpanel_chart(["<name>"], previous=True),
)


def markdown(schemas: Sequence[Schema] = SCHEMAS) -> str:
    """The README's column tables, generated from the declarations (tests check they are equal)."""
    lines: list[str] = []
    for schema in schemas:
        lines += [f"**{schema.name}**", "", "| column | type | description |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type_name} | {c.description} |" for c in schema.file_columns]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m airflow_provider_analytics_export.files.schemas > paste into README
    print(markdown(), end="")
