"""A real upstream HTTP server for the proxy tests (aiohttp.web on 127.0.0.1, in its own thread).

It plays the Zenzefi host: pages with absolute links, redirects, cookies, gzip, large and slow
bodies, an echo of everything it received, and errors. `LiveServer` also runs any ASGI app under a
real uvicorn in a thread (the platform, for end-to-end proxy tests). The fixtures at the end are
imported by the `tests/test_proxy*.py` modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import json
import socket
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
import uvicorn
from aiohttp import web
from asgiref.sync import SyncToAsync
from django.db import connections
from django.db.backends.utils import CursorWrapper

from tests.factories import UserFactory
from tokens.models import Scope
from tokens.services import token_issue

BLOCK = hashlib.sha256(b"zenzefi").digest() * 2048  # 64 KiB of fixed bytes
HOLD_SECONDS = 120  # longest an upstream `/hold/<name>` waits for the test's release


def big_body_sha256(size: int) -> str:
    digest = hashlib.sha256()
    full, rest = divmod(size, len(BLOCK))
    for _ in range(full):
        digest.update(BLOCK)
    digest.update(BLOCK[:rest])
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream:
    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="test-upstream", daemon=True)
        self.ready = threading.Event()
        self.requests: list[dict] = []  # what the echo endpoints saw
        self.events: list[str] = []  # e.g. "big:aborted"
        self._holds: dict[str, asyncio.Event] = {}

    # --- handlers
    async def echo(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
        seen = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": request.rel_url.raw_query_string,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": digest.hexdigest(),
            "body_length": length,
        }
        self.requests.append(seen)
        return web.json_response(seen)

    async def page(self, request: web.Request) -> web.Response:
        html = (
            f'<html><head><link rel="stylesheet" href="{self.base}/style.css">'
            f'<script src="//127.0.0.1:{self.port}/app.js"></script></head>'
            f'<body><a href="{self.base}/certificates/list?x=1">list</a>'
            f'<a href="http://example.com/">elsewhere</a><a href="{self.base}0/no">not ours</a></body></html>'
        )
        return web.Response(text=html, content_type="text/html", headers={"ETag": '"v1"'})

    async def css(self, request: web.Request) -> web.Response:
        body = f"body {{ background: url({self.base}/img/bg.png); }}"
        return web.Response(text=body, content_type="text/css")

    async def js(self, request: web.Request) -> web.Response:
        body = f'const api = "{self.base}/api"; const esc = "http:\\/\\/127.0.0.1:{self.port}\\/esc";'
        return web.Response(text=body, content_type="application/javascript")

    async def split(self, request: web.Request) -> web.StreamResponse:
        """An absolute URL split across two chunks (a pause between them)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
        await resp.prepare(request)
        url = f"{self.base}/certificates/split"
        cut = len(url) // 2
        await resp.write(b'<a href="' + url[:cut].encode())
        await asyncio.sleep(0.1)
        await resp.write(url[cut:].encode() + b'">split</a>')
        await resp.write_eof()
        return resp

    async def redirect(self, request: web.Request) -> web.Response:
        kind = request.query.get("to", "abs")
        location = {
            "abs": f"{self.base}/certificates/target?y=2",
            "rel": "/login",
            "ext": "https://example.com/x",
        }
        return web.Response(status=302, headers={"Location": location[kind]})

    async def cookies(self, request: web.Request) -> web.Response:
        resp = web.Response(text="cookies")
        resp.headers.add("Set-Cookie", "first=1; Domain=127.0.0.1; Path=/")
        resp.headers.add("Set-Cookie", "second=2; Domain=.example.com; Path=/app; HttpOnly")
        return resp

    async def gzipped(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "json":
            raw = json.dumps({"items": list(range(2000)), "base": self.base}).encode()
            ctype = "application/json"
        else:
            raw = (f'<a href="{self.base}/certificates/gz">gz</a>' * 500).encode()
            ctype = "text/html"
        body = gzip.compress(raw, mtime=0)
        return web.Response(body=body, headers={"Content-Type": ctype, "Content-Encoding": "gzip"})

    async def big(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        sent = 0
        try:
            while sent < size:
                chunk = BLOCK[: min(len(BLOCK), size - sent)]
                await resp.write(chunk)
                sent += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            self.events.append("big:aborted")
            raise
        self.events.append("big:done")
        return resp

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "2")))
        return web.Response(text="slow")

    async def hold(self, request: web.Request) -> web.Response:
        """Answers only once the test calls `release(name)` (at most HOLD_SECONDS): an upstream
        that is slow for exactly as long as the test needs, whatever the machine's load."""
        name = request.match_info["name"]
        event = self._holds.setdefault(name, asyncio.Event())
        self.events.append(f"hold:{name}:waiting")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), HOLD_SECONDS)
        self.events.append(f"hold:{name}:answered")
        return web.Response(text="held")

    def release(self, name: str) -> None:
        """Let `/hold/<name>` answer (now, or at once when it arrives later)."""

        def release_in_loop():
            self._holds.setdefault(name, asyncio.Event()).set()

        self.loop.call_soon_threadsafe(release_in_loop)

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    # --- browser mode (tests/test_browser_proxy.py, tests/test_proxy_origin.py)
    async def attack(self, request: web.Request) -> web.Response:
        """Hostile upstream content: reads the cookies, calls the platform's API and tries to buy a
        token with the customer's credentials. What it managed is left in window.__result."""
        return web.Response(text=ATTACK_HTML, content_type="text/html")

    async def render(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "logo.png":
            return web.Response(body=PNG_4X3, content_type="image/png")
        body, ctype = RENDER_FILES[name]
        return web.Response(text=body, content_type=ctype)

    async def evil_cookie(self, request: web.Request) -> web.Response:
        """An upstream trying to overwrite the proxy origin's session cookie (and one harmless)."""
        resp = web.Response(text="cookies", headers={"Location": f"{self.base}/render/index.html"})
        resp.headers.add("Set-Cookie", "zz_proxy=stolen; Path=/")
        resp.headers.add("Set-Cookie", "upstream_pref=1; Domain=127.0.0.1; Path=/")
        return resp

    # --- lifecycle
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/page.html", self.page)
        app.router.add_get("/style.css", self.css)
        app.router.add_get("/app.js", self.js)
        app.router.add_get("/split.html", self.split)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/cookies", self.cookies)
        app.router.add_get("/gzip/{kind}", self.gzipped)
        app.router.add_get("/big", self.big)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/hold/{name}", self.hold)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/attack.html", self.attack)
        app.router.add_get("/render/{name}", self.render)
        app.router.add_get("/evil-cookie", self.evil_cookie)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> Upstream:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("test upstream did not start")
        return self

    def stop(self) -> None:
        async def shutdown():
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class LiveServer:
    """An ASGI app under a real uvicorn on 127.0.0.1 in a background thread. With `loopback_names`
    it also listens on [::1] (same port), so both http://127.0.0.1:<port> and
    http://localhost:<port> reach it whichever address a browser picks for "localhost"."""

    def __init__(self, app, *, loopback_names: bool = False, http: str = "auto"):
        self.sockets = None
        if loopback_names:
            self.sockets = _loopback_sockets()
            self.port = self.sockets[0].getsockname()[1]
        else:
            self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # proxy_headers off: the client (127.0.0.1) is not a trusted proxy, so a spoofed
        # X-Forwarded-For must not become the client address.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            proxy_headers=False,
            http=http,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": self.sockets}, name="test-uvicorn", daemon=True
        )

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _loopback_sockets() -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 and, where the host has IPv6, [::1], on one free port."""
    for _ in range(20):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        v4.bind(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            v6.bind(("::1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                v4.close()
                continue
            return [v4]  # no IPv6 on this host: "localhost" is 127.0.0.1 only
        return [v4, v6]
    raise RuntimeError("no free port on both loopback addresses")


# --- pages of the browser-mode tests ---------------------------------------------------------
ATTACK_HTML = """<!doctype html><html><head><title>Upstream page</title></head><body>
<h1>Upstream page (hostile script)</h1>
<pre id="out" style="white-space: pre-wrap; max-width: 900px">running</pre>
<script>
(async () => {
  const site = new URLSearchParams(location.search).get("site") || "";
  const r = {origin: location.origin, ran: true};
  try { r.cookie = document.cookie; } catch (e) { r.cookie = "error:" + e.name; }
  async function attempt(name, url, init) {
    try {
      const resp = await fetch(url, Object.assign({credentials: "include"}, init || {}));
      r[name] = {status: resp.status, body: (await resp.text()).slice(0, 4000)};
    } catch (e) { r[name] = "error:" + e.name; }
  }
  await attempt("me_here", "/api/v1/users/me");
  await attempt("me_site", site + "/api/v1/users/me");
  await attempt("buy_here", "/api/v1/tokens/purchase", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({duration_hours: 1})});
  await attempt("buy_site", site + "/api/v1/tokens/purchase", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({duration_hours: 1})});
  await attempt("buy_form", site + "/api/v1/tokens/purchase", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({duration_hours: 1})});
  window.__result = r;
  const summary = {};
  for (const [k, v] of Object.entries(r)) summary[k] = (v && v.status !== undefined) ? "HTTP " + v.status : v;
  document.getElementById("out").textContent = JSON.stringify(summary, null, 1);
  document.title = "done";
})();
</script></body></html>"""

RENDER_FILES = {
    "index.html": (
        """<!doctype html><html><head><title>Render</title>
<link rel="stylesheet" href="/render/style.css"></head><body>
<div id="box">styled box</div><img id="logo" src="/render/logo.png" alt="logo">
<p id="status">script did not run</p><a id="next" href="/render/second.html">second page</a>
<script src="/render/app.js"></script></body></html>""",
        "text/html",
    ),
    "second.html": (
        """<!doctype html><html><head><title>Second</title>
<link rel="stylesheet" href="/render/style.css"></head><body><h1 id="box">second page</h1>
</body></html>""",
        "text/html",
    ),
    "style.css": (
        "#box { color: rgb(10, 120, 30); border: 3px solid rgb(200, 0, 0); padding: 8px; }"
        " #logo { width: 120px; height: 90px; image-rendering: pixelated; }",
        "text/css",
    ),
    "app.js": (
        'document.getElementById("status").textContent = "script ran"; window.__ran = true;',
        "application/javascript",
    ),
}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


PNG_4X3 = _png(4, 3, (30, 90, 200))


# --- fixtures -------------------------------------------------------------------------------
BACKEND_URL = "https://zz.example.com"
DEVICE = "device-A"


@pytest.fixture(scope="session")
def upstream_server():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_platform():
    from zenzefi.asgi import application

    server = LiveServer(application).start()
    yield server
    server.stop()


def _close_thread_connections() -> None:
    """Token validation's cache misses run in asgiref's shared thread: close its connection so
    the test database can be flushed and dropped."""
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(10)


@pytest.fixture
def proxy(settings, upstream_server, live_platform):
    """An httpx client on the platform's /api/v1/proxy, in front of the test upstream."""
    from zenzefi.asgi import proxy_application

    settings.ZENZEFI_TARGET_URL = upstream_server.base
    settings.BACKEND_URL = BACKEND_URL
    settings.PROXY_RATE_LIMIT_PER_MINUTE = 1000
    settings.PROXY_READ_TIMEOUT = 30.0
    settings.PROXY_CONNECT_TIMEOUT = 5.0
    settings.SESSION_IDLE_MINUTES = 5
    settings.COOKIE_SECURE = True
    settings.PROXY_COUNTER_FLUSH_SECONDS = 0  # write-through; one test covers the batching
    proxy_application.breaker.reset()
    proxy_application.breaker.health_read_at = 0.0
    proxy_application._activated.clear()
    proxy_application.usage.pending.clear()
    upstream_server.requests.clear()
    upstream_server.events.clear()
    with httpx.Client(base_url=live_platform.url + "/api/v1/proxy", timeout=60) as client:
        yield client
    _close_thread_connections()


class FakeClock:
    """The proxy's clock (`proxy.clock.clock`) with time moved forward by `advance`, instead of
    sleeping until a cool-down or an interval has passed. Both readings keep ticking."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def fake_clock(monkeypatch):
    from proxy.clock import clock

    fake = FakeClock()
    monkeypatch.setattr(clock, "time", fake.time)
    monkeypatch.setattr(clock, "monotonic", fake.monotonic)
    return fake


@pytest.fixture
def customer(transactional_db):
    return UserFactory()


def issue(user, *, scope: str = Scope.FULL, hours: int = 1):
    issued = token_issue(user=user, duration_hours=hours, scope=scope, cost=Decimal("1.00"))
    return issued.token, issued.plaintext


@pytest.fixture
def token(customer):
    return issue(customer)


def creds(plaintext: str, device: str = DEVICE, **extra: str) -> dict:
    return {"X-Access-Token": plaintext, "X-Device-ID": device, **extra}


@contextmanager
def all_queries():
    """Every SQL statement run in this process (any thread) while the block runs."""
    seen: list[str] = []
    original = CursorWrapper._execute_with_wrappers

    def recording(self, sql, params, many, executor):
        seen.append(sql)
        return original(self, sql, params, many, executor)

    CursorWrapper._execute_with_wrappers = recording
    try:
        yield seen
    finally:
        CursorWrapper._execute_with_wrappers = original
