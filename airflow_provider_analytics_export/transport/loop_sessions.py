"""One aiohttp session per event loop, shared by every trigger that polls on it.

A triggerer runs hundreds of triggers in one event loop; a session (and its connection pool)
each cost ~130 KB and a fresh TCP/TLS connection per trigger. The shared session holds no
per-connection state: headers, credentials and timeouts go with each request (see
``client.asend``) and its cookie jar keeps no cookies, so triggers of different
Airflow connections can share it safely. It is closed when its loop shuts down (``asyncio.run``
and Airflow's triggerer finalise a loop's async generators before closing it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

#: The session of each running loop, and the async generator that closes it at shutdown.
_SESSIONS: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncGenerator[None, None]]] = {}


async def loop_session() -> aiohttp.ClientSession:
    """The running loop's shared session, opened on first use."""
    loop = asyncio.get_running_loop()
    for other in [other for other in _SESSIONS if other.is_closed()]:
        del _SESSIONS[other]  # closed without finalising its async generators: nothing to await
    if loop in _SESSIONS and not _SESSIONS[loop][0].closed:
        return _SESSIONS[loop][0]
    import aiohttp

    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    closer = _close_at_shutdown(loop, session)
    await closer.__anext__()  # started: the loop now finalises it (loop.shutdown_asyncgens)
    _SESSIONS[loop] = (session, closer)
    return session


async def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if _SESSIONS.get(loop, (None,))[0] is session:
            del _SESSIONS[loop]
        await session.close()
