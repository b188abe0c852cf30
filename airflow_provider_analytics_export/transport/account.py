"""What the transport knows of one API account: a description the hook builds, not the hook.

The transport is the lowest layer: it sends, retries and reads answers for whichever API
describes itself here (name, base URL, credentials headers, timeouts, attempts, its shared
limit and how it reports errors), so it never imports the hooks above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_analytics_export.exceptions import ApiError
    from airflow_provider_analytics_export.transport.limits import AccountLimit, RateLimitHeaders

#: Builds the exception for an error answer: (method, endpoint, status, JSON body or None,
#: text when the body holds no message, headers) -> the API's error.
ErrorFor = Callable[[str, str, int, Any, str, Mapping[str, str]], "ApiError"]


@dataclass(frozen=True)
class ApiAccount:
    """One API account as the transport sends to it; ``repr`` shows no credential.

    :param api_name: the API's name, as errors and logs show it.
    :param where: the connection in words for messages (``Connection 'x' (Browsee)``), no secret.
    :param base_url: scheme, host and port; endpoints are appended to it.
    :param host_has_scheme: whether the connection's host named a scheme (else https was assumed).
    :param headers: what every call sends: accepted type and the credentials.
    :param timeout: (connect, read) seconds.
    :param max_attempts: attempts per request before giving up.
    :param limit: the account's client-side limit, shared by every caller of the account.
    :param rate_limit_headers: where the API reports its own window, if it does.
    :param max_server_wait: the longest single wait the server may ask for (Retry-After, a
        window's reset); a longer one fails the request at once instead of stalling the account.
    :param error_for: the exception for an error answer (an API with its own envelope brings its own).
    :param log: where retries and pauses are logged.
    """

    api_name: str
    where: str
    base_url: str
    host_has_scheme: bool
    headers: Mapping[str, str] = field(repr=False)
    timeout: tuple[float, float]
    max_attempts: int
    limit: AccountLimit = field(repr=False)
    rate_limit_headers: RateLimitHeaders | None
    max_server_wait: float
    error_for: ErrorFor = field(repr=False)
    log: Logger = field(repr=False)
