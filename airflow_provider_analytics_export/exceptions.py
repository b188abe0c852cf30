"""Every exception this provider raises, in one module.

A small hierarchy so DAG authors can catch what they can act on: bad credentials,
a request the API rejected, a rate limit that outlasted our retries, or anything else
the API (or the data it returned) got wrong.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class AnalyticsExportError(AirflowException):
    """Base class of every error this provider raises."""


class ApiError(AnalyticsExportError):
    """The API answered with an error (or an unusable body) after any retries.

    The message always names the API, method, endpoint (never the query string),
    the HTTP status and the API's own error text; plus the API's stable error ``code`` and
    its ``request_id`` when the API sends them (the id is what its support asks for).
    """

    def __init__(
        self,
        api: str,
        method: str,
        endpoint: str,
        status: int | None,
        api_message: str,
        retry_after: float | None = None,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.api = api
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.api_message = api_message
        self.retry_after = retry_after
        self.code = code
        self.request_id = request_id
        status_text = f"HTTP {status}" if status is not None else "no response"
        context = "".join(
            f"; {name} {value}" for name, value in (("code", code), ("request_id", request_id)) if value
        )
        super().__init__(f"{api} {method} {endpoint} failed ({status_text}{context}): {api_message}")


class TransientApiError(ApiError):
    """5xx, a dropped connection, a timeout or a truncated/undecodable body: worth retrying."""


class TlsHandshakeError(ApiError):
    """The TLS handshake failed in a way another attempt cannot fix, so it is not retried.

    Typically an ``https://`` URL (the default for a host without scheme) pointing at a
    plain-HTTP server, or a certificate that does not verify.
    """


class AuthenticationError(ApiError):
    """401/403: the connection's credentials were refused; retrying cannot help."""


class InvalidRequestError(ApiError):
    """Any other 4xx: the API rejected the request as sent; retrying cannot help."""


class RateLimitedError(ApiError):
    """429 that persisted through every retry."""


class ServerWaitTooLongError(ApiError):
    """The API asked to wait (Retry-After, a rate-limit reset) longer than the connection allows.

    Failed at once rather than holding the task, and pausing every caller of the account, for
    hours; the connection extra ``max_server_wait`` sets the ceiling.
    """


class QuotaExceededError(ApiError):
    """429 for an exhausted plan quota (not the per-minute rate limit): not retried blindly."""


class MalformedResponseError(ApiError):
    """A complete response without a documented field (or of the wrong shape).

    Not retried: asking again would get the same body, so the task fails at once.
    """


class ExportIntegrityError(AnalyticsExportError):
    """The data did not add up: a count mismatch, a repeated page, a shifted dataset.

    Raised instead of writing a silently short or doubled file.
    """


class LimitBackendError(AnalyticsExportError, RuntimeError):
    """The shared limit backend is misconfigured or unreachable; requests are not sent unlimited."""


class SealmetricsExportFailedError(AnalyticsExportError):
    """The Sealmetrics export job ended in ``failed``; the message carries the API's ``error_message``."""


class SealmetricsExportExpiredError(AnalyticsExportError):
    """The Sealmetrics job's status is ``expired``: its download link is gone, a new export is needed."""


class SealmetricsExportTimeoutError(AnalyticsExportError):
    """A Sealmetrics job was still running when the wait ran out; it was cancelled, not left running."""
