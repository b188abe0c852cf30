"""Files an API hands out: where a download link may lead, and a checked copy into the caller's sink.

A download link carries a bearer token and no API key: followed anywhere but the API's own
host and port, over https (plain http only to a loopback host), under the documented path,
it would leak the file and the token. The hook that downloads never opens a destination
itself: it copies the body into a sink its caller opens (an operator's atomic writer), one
sink per attempt, and only a file whose records check out is committed.

The copy runs inside the transport's ``parse`` callback, where a ValueError or a requests
error means "the answer was cut short: send again". A destination that cannot be opened,
written or committed is no such thing, so its error travels out in :class:`DestinationFailed`
(retried by nothing) and :func:`destination_errors_as_themselves` raises it again, unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import SplitResult, urlsplit

from airflow.sdk.log import mask_secret

from airflow_provider_analytics_export.exceptions import AnalyticsExportError, ExportIntegrityError
from airflow_provider_analytics_export.progress import ExportProgress

_LOOPBACK_NAMES = ("localhost",)


class FileSink(Protocol):
    """Where a downloaded file goes: committed on a clean exit, discarded when the block raises.

    :class:`~airflow_provider_analytics_export.files.writer.ExportWriter` is one: ``copy``
    writes the chunks as they are and returns the records it counted in them.
    """

    def __enter__(self) -> Any: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...

    def copy(self, chunks: Iterable[bytes], record_format: str) -> int: ...


Sink = TypeVar("Sink", bound=FileSink)


class DestinationFailed(Exception):
    """A sink's own error, carried out of a transport ``parse`` callback untouched.

    Not an :class:`~airflow_provider_analytics_export.exceptions.ApiError`, not a ValueError:
    no retry policy retries it and no answer check reads it as a bad body.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def destination_errors_as_themselves() -> Iterator[None]:
    """Around a request whose ``parse`` copies into a sink: its destination's error, raised as itself."""
    try:
        yield
    except DestinationFailed as carrier:
        raise carrier.error from carrier.error.__cause__


def link_token(url: str) -> str:
    """The last path segment of a download link: the bearer token."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


def mask_link_token(url: str) -> None:
    """Mask a link's token in every log line from now on, before anything can log it."""
    mask_secret(link_token(url))


def checked_link(url: str, base_url: str, path_prefix: str, shown_as: str) -> str:
    """``url`` (a relative link joined to ``base_url``) if it is safe to follow; else a clear error.

    :param url: the link the API returned.
    :param base_url: the connection's base URL: the only host and port a link may point at.
    :param path_prefix: the documented path every download link starts with.
    :param shown_as: the endpoint as errors show it (without the token).
    """
    if url.startswith("/"):
        url = f"{base_url}{url}"
    mask_link_token(url)
    link, api = urlsplit(url), urlsplit(base_url)
    if link.scheme != "https" and not (link.scheme == "http" and _is_loopback(link.hostname)):
        raise AnalyticsExportError(
            f"Refusing to download over {link.scheme!r}: use https (http only for a loopback host)."
        )
    if (link.hostname, _port(link)) != (api.hostname, _port(api)):
        raise AnalyticsExportError(
            f"Refusing to download from {link.hostname!r} port {_port(link)}: the download URL "
            f"must be on the connection's host {api.hostname!r} port {_port(api)}."
        )
    if not link.path.startswith(path_prefix):
        raise AnalyticsExportError(f"Unexpected download URL path; expected {shown_as}.")
    return url


def copy_checked(
    chunks: Iterable[bytes],
    open_sink: Callable[[str], Sink],
    layout: str,
    *,
    progress: ExportProgress,
    where: str,
    claimed: tuple[int, str] | None = None,
    total: int | None = None,
) -> Sink:
    """Copy ``chunks`` into a fresh sink for ``layout``; the sink, committed, once its records check out.

    A malformed file, or one whose record count differs from what the API ``claimed`` (rows,
    and the claim in words), raises :class:`ExportIntegrityError` inside the sink's block, so
    nothing is committed. An error of ``chunks`` (the answer cut short) is raised as is, for
    the transport to retry; any other error of the sink (opening, writing, committing) comes
    out as :class:`DestinationFailed`. Memory stays bounded: one chunk at a time.

    :param layout: the file's record layout: ``csv``, ``json`` or ``ndjson``.
    :param where: the request, for the error message, e.g. ``Sealmetrics GET /download/<token>``.
    :param total: the expected size in bytes, for the progress lines.
    """
    answer_errors: list[BaseException] = []

    def progressed() -> Iterator[bytes]:
        try:
            for chunk in chunks:
                progress.update(len(chunk), pages=0, total=total)
                yield chunk
        except BaseException as exc:
            answer_errors.append(exc)
            raise

    try:
        sink = open_sink(layout)
        with sink:
            try:
                rows = sink.copy(progressed(), layout)
            except ValueError as exc:
                if exc in answer_errors:
                    raise
                # The sink's record count refused the file (a write that raised ValueError lands here too).
                raise ExportIntegrityError(
                    f"{where}: the {layout} file is not valid ({exc}); it was not written."
                ) from None
            if claimed is not None and claimed[0] != rows:
                raise ExportIntegrityError(
                    f"{claimed[1]} but the downloaded file holds {rows} records; the file was not written."
                )
    except Exception as exc:
        if exc in answer_errors or isinstance(exc, ExportIntegrityError):
            raise
        raise DestinationFailed(exc) from exc
    progress.finish()
    return sink


def _port(parts: SplitResult) -> int | None:
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
