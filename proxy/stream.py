"""Streaming both ways: the client's body to the upstream as it arrives (with PROXY_BODY_TIMEOUT
between reads), the upstream's answer (502/504 and the breaker's counting on failures), and its
body back to the client as it comes, raw or rewritten, with no buffering of the whole.

The upstream response is released (its connection back to the pool) when read to the end and
closed otherwise; a client that disconnects cancels the streaming.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from django.conf import settings
from yarl import URL

from proxy import client as upstream
from proxy.breaker import CircuitBreaker
from proxy.headers import client_headers
from proxy.request import Ctx
from proxy.responses import BodyTimeout, ClientGone, ProxyError
from proxy.rewrite import Rewrite

logger = logging.getLogger("proxy")
STREAM_TOUCH_SECONDS = 30.0  # a long response reports its bytes (and "last seen") this often


async def request_body(receive, ctx: Ctx) -> AsyncIterator[bytes]:
    ctx.body_done = False
    more = True
    limit = settings.PROXY_BODY_TIMEOUT
    while more:
        if limit > 0:
            try:
                async with asyncio.timeout(limit):
                    message = await receive()
            except TimeoutError:
                ctx.body_timeout = True
                raise BodyTimeout() from None
        else:
            message = await receive()
        if message["type"] == "http.disconnect":
            ctx.client_gone = True
            raise ClientGone()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if chunk:
            ctx.bytes_in += len(chunk)
            yield chunk
    ctx.body_done = True


async def send_upstream(
    breaker: CircuitBreaker, method: str, url: str, headers, receive, ctx: Ctx, has_body: bool
) -> aiohttp.ClientResponse:
    """The upstream's response (headers read), or 502/504. Connection failures count for the
    breaker; a request without a body is retried once on a pooled connection the upstream had
    just closed."""
    session = upstream.get_session()
    attempts = 1 if has_body or method not in ("GET", "HEAD", "OPTIONS") else 2
    for attempt in range(attempts):
        try:
            resp = await session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=request_body(receive, ctx) if has_body else None,
                allow_redirects=False,
                timeout=upstream.timeouts(),
            )
        except (ClientGone, BodyTimeout):
            raise
        except aiohttp.ServerDisconnectedError:
            # A pooled keep-alive connection the upstream had just closed: retry once if safe.
            if attempt + 1 < attempts:
                continue
            breaker.failure()
            raise ProxyError(502, "upstream_unavailable", "The Zenzefi host closed the connection.") from None
        except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                breaker.failure()
            else:
                breaker.success()
            raise ProxyError(504, "upstream_timeout", "The Zenzefi host did not answer in time.") from None
        except TimeoutError:
            raise ProxyError(504, "upstream_timeout", "The Zenzefi host did not answer in time.") from None
        except aiohttp.ClientConnectorError:
            breaker.failure()
            raise ProxyError(502, "upstream_unavailable", "The Zenzefi host is unreachable.") from None
        except aiohttp.ClientError:
            if ctx.client_gone:
                raise ClientGone() from None
            if ctx.body_timeout:
                raise BodyTimeout() from None
            breaker.failure()
            raise ProxyError(502, "upstream_unavailable", "The Zenzefi host failed to answer.") from None
        breaker.success()
        return resp
    raise AssertionError("unreachable")


async def respond(
    resp, send, receive, method: str, rw: Rewrite, ctx: Ctx, browser: bool, touch: Callable[[], Awaitable]
) -> int:
    """The upstream's answer to the client: its status, its headers by the header rules, its body
    streamed (`touch` reports progress every STREAM_TOUCH_SECONDS of a long body)."""
    status = resp.status
    headers, body_rewriter = client_headers(
        resp.raw_headers, rw, method=method, status=status, browser=browser
    )
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await _stream(resp, send, receive, ctx, body_rewriter, touch)
    return status


async def _stream(resp, send, receive, ctx: Ctx, body_rewriter, touch: Callable[[], Awaitable]) -> None:
    """Raw bytes (or rewritten text) to the client as they come. The upstream response is
    released when read to the end and closed otherwise (client gone, upstream error)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    watcher = None
    content = resp.content
    complete = False
    next_touch = loop.time() + STREAM_TOUCH_SECONDS
    try:
        while True:
            chunk = await content.readany()
            eof = not chunk or content.at_eof()
            out = chunk
            if body_rewriter is not None:
                out = body_rewriter.feed(chunk) if chunk else b""
                if eof:
                    out += body_rewriter.flush()
            if out or eof:
                await send({"type": "http.response.body", "body": out, "more_body": not eof})
                ctx.bytes_out += len(out)
            if eof:
                complete = True
                break
            if watcher is None and ctx.body_done:
                watcher = asyncio.ensure_future(_watch_disconnect(receive, task, ctx))
            if loop.time() >= next_touch:
                next_touch = loop.time() + STREAM_TOUCH_SECONDS
                await touch()
    except asyncio.CancelledError:
        if not ctx.client_gone:
            raise
        task.uncancel()
    except (aiohttp.ClientError, TimeoutError, zlib.error) as exc:
        # Too late for an error status: the client sees a cut-off body (the connection closes).
        logger.warning("proxy: upstream body failed after the response started: %r", exc)
    finally:
        ctx.done = True
        if watcher is not None:
            watcher.cancel()
        if complete:
            resp.release()
        else:
            resp.close()


async def _watch_disconnect(receive, task, ctx: Ctx) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not ctx.done:
                ctx.client_gone = True
                task.cancel()
            return
