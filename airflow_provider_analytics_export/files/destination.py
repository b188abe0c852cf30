"""Pre-flight check of an export's destination: fail before the first API request, not after the last.

Without it a missing filesystem package, a wrong scheme or a bucket that does not exist showed up
only when the writer flushed its first bytes (object stores buffer the first megabytes), after an
export had made all its requests or streamed a whole file. :func:`check_destination` opens the
scheme's filesystem and writes, then removes, an empty object beside the destination, so the
task fails at once with the URL, the connection id and what to install or fix.
"""

from __future__ import annotations

import contextlib
import uuid
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import ObjectStoragePath

from airflow_provider_analytics_export.exceptions import DestinationError
from airflow_provider_analytics_export.files.writer import _temp_name

#: Scheme -> (the provider's extra that installs its filesystem, what that extra installs).
SCHEME_EXTRAS = {
    "s3": ("s3", "apache-airflow-providers-amazon[s3fs]"),
    "s3a": ("s3", "apache-airflow-providers-amazon[s3fs]"),
    "gs": ("gcs", "apache-airflow-providers-google and gcsfs"),
    "gcs": ("gcs", "apache-airflow-providers-google and gcsfs"),
    "abfs": ("azure", "apache-airflow-providers-microsoft-azure and adlfs"),
    "abfss": ("azure", "apache-airflow-providers-microsoft-azure and adlfs"),
    "adl": ("azure", "apache-airflow-providers-microsoft-azure and adlfs"),
}
#: Schemes Airflow has no filesystem for, and the one to use instead.
AZURE_INSTEAD = (
    "abfs://<container>/<path> (the same Blob container; the account is the connection's: an adls "
    "connection with the account name and key, or a connection_string extra)"
)
UNSUPPORTED_SCHEMES = {"wasb": AZURE_INSTEAD, "wasbs": AZURE_INSTEAD}


def display_uri(uri: str) -> str:
    """``uri`` without user info or query string: safe in logs and exception text."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _where(destination: str, conn_id: str | None) -> str:
    return f"destination {display_uri(destination)} (destination_conn_id={conn_id!r})"


def _missing_filesystem(destination: str, conn_id: str | None, scheme: str) -> DestinationError:
    where = _where(destination, conn_id)
    if scheme in UNSUPPORTED_SCHEMES:
        return DestinationError(
            f"{where}: Airflow has no filesystem for {scheme}://; use {UNSUPPORTED_SCHEMES[scheme]} "
            f"with pip install 'airflow-provider-analytics-export[azure]'."
        )
    if scheme in SCHEME_EXTRAS:
        extra, packages = SCHEME_EXTRAS[scheme]
        return DestinationError(
            f"{where}: no filesystem is installed for {scheme}://; install {packages}: "
            f"pip install 'airflow-provider-analytics-export[{extra}]'."
        )
    return DestinationError(
        f"{where}: Airflow has no filesystem for {scheme}://; supported here: file://, "
        f"{', '.join(s + '://' for s in SCHEME_EXTRAS)} (see the README's Object storage section)."
    )


def check_destination(destination: str, conn_id: str | None) -> None:
    """Fail now, with the URL and connection id, if ``destination`` cannot be written.

    Creates the parent folder of a local destination (as the writer would), then writes an
    empty object next to the destination and removes it. The probe is named like the
    writer's temp objects (``.<name>.<hex>.partial``), so one left behind by a killed worker
    is cleaned up by the next export of that destination.
    """
    scheme = urlsplit(destination).scheme or "file"
    try:
        path = ObjectStoragePath(destination, conn_id=conn_id)
        path.fs  # noqa: B018 -- resolving the filesystem is the check
    except (ValueError, ImportError) as exc:
        raise _missing_filesystem(destination, conn_id, scheme) from exc
    probe = path.parent / _temp_name(path.name, uuid.uuid4().hex[:12])
    try:
        if path.protocol in ("", "file", "local"):
            path.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("wb"):
            pass  # closing uploads the empty object: a missing bucket or no write access fails here
    except Exception as exc:
        raise DestinationError(
            f"Cannot write to {_where(destination, conn_id)}: {type(exc).__name__}: {exc}. "
            "Nothing was requested from the API; check the bucket or container and the "
            "connection's permissions."
        ) from exc
    with contextlib.suppress(FileNotFoundError):
        probe.fs.rm_file(probe.path)
