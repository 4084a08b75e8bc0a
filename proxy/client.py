"""The proxy's upstream HTTP client: one aiohttp session per worker process (per event loop).

Chosen by measurement (docs/performance.md): httpx's AsyncClient costs ~2 ms of CPU per request
on this machine, aiohttp's client a fraction of that; httpx stays the client for every other
outbound call. The session is created lazily inside the running loop with explicit pool limits
and timeouts, no environment proxies, no redirects (per request), no cookie jar (a shared jar
would hand one user's upstream cookies to the next) and no automatic decompression (raw bytes
are forwarded with the upstream's Content-Encoding/Content-Length untouched).
"""

from __future__ import annotations

import asyncio
import weakref
from functools import cache

import aiohttp
from django.conf import settings

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def timeouts() -> aiohttp.ClientTimeout:
    """`connect` covers waiting for a pooled connection plus connecting; `sock_read` is the longest
    silence allowed between two reads (headers or body). Read per request, so settings apply at once."""
    return _timeouts(settings.PROXY_POOL_TIMEOUT, settings.PROXY_CONNECT_TIMEOUT, settings.PROXY_READ_TIMEOUT)


@cache
def _timeouts(pool: float, connect: float, read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=pool + connect, sock_connect=connect, sock_read=read)


def get_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(
            limit=settings.PROXY_MAX_CONNECTIONS,
            limit_per_host=settings.PROXY_MAX_CONNECTIONS,
            keepalive_timeout=settings.PROXY_KEEPALIVE_SECONDS,
            ttl_dns_cache=300,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=timeouts(),
            # No headers of aiohttp's own: the client's (filtered) headers go through as they are.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            raise_for_status=False,
        )
        _sessions[loop] = session
    return session


async def close_session() -> None:
    """Close this loop's session (lifespan shutdown, tests)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    session = _sessions.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()
