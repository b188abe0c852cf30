"""Connection extras: declared once, shown in the UI form and read with one tolerant parser.

Airflow stores a connection's extras however it was made: the 3.3 UI form saves every untouched
optional field as JSON ``null``, the CLI and URIs give strings (``"30"``), environment JSON gives
numbers. :class:`ExtraField` turns any of those into one checked value (or its default) and fails
with an error that names the connection, the field and what is allowed. The same declarations
generate the form's ``conn-fields`` in :func:`airflow_provider_analytics_export.get_provider_info`.

This module imports nothing from Airflow: provider discovery reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["string", "integer", "number", "timezone"]

_JSON_TYPES: dict[str, str] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "timezone": "string",
}


@dataclass(frozen=True)
class ExtraField:
    """One connection extra: its form field and how a stored value is read.

    :param name: the key in the connection's extra JSON.
    :param label: the form's label.
    :param description: the form's help text (say the default).
    :param kind: ``string``, ``integer``, ``number`` or ``timezone`` (an IANA name such as
        ``Europe/Madrid``, read as a :class:`zoneinfo.ZoneInfo`).
    :param default: the value when the extra is absent, null or blank.
    :param minimum: the smallest allowed number (integer/number kinds).
    :param maximum: the largest allowed number (integer/number kinds).
    :param required: the form marks it needed (its schema allows no null); reading still
        gives the default when it is missing, for the hook to fail naming it.
    """

    name: str
    label: str
    description: str
    kind: Kind = "string"
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def form_field(self) -> dict[str, Any]:
        """The ``conn-fields`` entry Airflow's connection form renders."""
        kind = _JSON_TYPES[self.kind]
        schema: dict[str, Any] = {"type": kind if self.required else [kind, "null"]}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return {"label": self.label, "description": self.description, "schema": schema}

    def read(self, raw: Any, where: str) -> Any:
        """The checked value of a stored extra; ``where`` names the connection for errors.

        null, a missing key and blank strings mean "not set" (the default).
        """
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return self._default()
        if self.kind == "string":
            if isinstance(raw, (dict, list)):
                raise self._invalid(raw, where, "a text value")
            return str(raw).strip()
        if self.kind == "timezone":
            return self._timezone(raw, where)
        return self._number(raw, where)

    def _default(self) -> Any:
        if self.kind == "timezone" and self.default is not None:
            return self._timezone(self.default, "the default")
        return self.default

    def _number(self, raw: Any, where: str) -> int | float:
        integer = self.kind == "integer"
        wanted = "a whole number" if integer else "a number"
        if isinstance(raw, bool):
            raise self._invalid(raw, where, wanted)
        try:
            value = float(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            raise self._invalid(raw, where, wanted) from None
        if not math.isfinite(value) or (integer and not value.is_integer()):
            raise self._invalid(raw, where, wanted)
        low_ok = self.minimum is None or value >= self.minimum
        high_ok = self.maximum is None or value <= self.maximum
        if not (low_ok and high_ok):
            raise self._invalid(raw, where, f"{wanted} {self._range()}")
        return int(value) if integer else value

    def _range(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"from {_plain(low)} to {_plain(high)}"
        return f">= {_plain(low)}" if low is not None else f"<= {_plain(high or 0)}"

    def _timezone(self, raw: Any, where: str) -> Any:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(str(raw).strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise self._invalid(
                raw, where, "an IANA time zone name such as 'UTC' or 'Europe/Madrid'"
            ) from None

    def _invalid(self, raw: Any, where: str, wanted: str) -> ValueError:
        shown = raw if isinstance(raw, (int, float, bool)) else str(raw)[:60]
        return ValueError(
            f"{where}: extra {self.name!r}={shown!r} is invalid; use {wanted} or leave it empty."
        )


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


#: Extras every connection type understands (timeouts, retries and limits of the shared transport).
TRANSPORT_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "timeout",
        "Read timeout (s)",
        "Seconds to wait for a response before retrying (default 60).",
        "number",
        default=60.0,
        minimum=1,
    ),
    ExtraField(
        "connect_timeout",
        "Connect timeout (s)",
        "Seconds to wait for the TCP/TLS connection (default 10).",
        "number",
        default=10.0,
        minimum=1,
    ),
    ExtraField(
        "max_attempts",
        "Max attempts",
        "Attempts per request on 429/5xx/network errors before failing (default 6).",
        "integer",
        default=6,
        minimum=1,
        maximum=20,
    ),
    ExtraField(
        "max_server_wait",
        "Longest server-requested wait (s)",
        "The longest single wait the API may ask for (Retry-After, a rate-limit reset) before a "
        "retry; a longer one fails the task at once instead of holding it (default 900).",
        "number",
        default=900.0,
        minimum=1,
    ),
    ExtraField(
        "limit_backend",
        "Shared limit backend",
        "Redis URL (redis://host:6379/0) or id of an Airflow redis connection: holds the API's "
        "limits across every worker process and machine. Empty: every process on this machine.",
    ),
)

#: Each connection type's own extras (shown above the transport fields in the form).
CONNECTION_EXTRAS: dict[str, tuple[ExtraField, ...]] = {
    "browsee": (),
    "braze": (
        ExtraField(
            "timezone",
            "Workspace time zone",
            "The company time zone of the Braze workspace (e.g. America/New_York): days are its "
            "local days, and hourly times without an offset are read in it (default UTC).",
            "timezone",
            default="UTC",
        ),
    ),
    "openpanel": (
        ExtraField(
            "project_id",
            "Default project ID",
            "Used when an operator or hook call gives no project_id (a read client may leave it "
            "empty: it reads its own project).",
        ),
        ExtraField(
            "timezone",
            "Organization time zone",
            "The IANA zone of the OpenPanel organization (Settings), in which charts cut their "
            "buckets and date their points (default UTC).",
            "timezone",
            default="UTC",
        ),
    ),
    "peer5": (),
    "sealmetrics": (
        ExtraField(
            "account_id",
            "Account ID",
            "Required: the site slug (as in my.sealmetrics.com/<slug>/...) every /exports call "
            "names; an operator or hook call may pass another account_id.",
            required=True,
        ),
        ExtraField(
            "timezone",
            "Account time zone",
            "The Sealmetrics account's time zone (e.g. Europe/Madrid): date_from/date_to are its "
            "local days, so windows must be whole days there (default UTC).",
            "timezone",
            default="UTC",
        ),
    ),
}


def extra_fields(conn_type: str) -> dict[str, ExtraField]:
    """Every extra a connection type understands, by name: its own, then the transport's."""
    return {field.name: field for field in (*CONNECTION_EXTRAS[conn_type], *TRANSPORT_FIELDS)}
