"""Browser mode and the sandbox in a real browser (issue 11 item 2): Playwright driving Debian's
Chromium (headless) against the whole ASGI application under a real uvicorn.

The server listens on 127.0.0.1 and [::1] on one port, so the site is http://127.0.0.1:<port>
(BACKEND_URL) and the proxy origin http://localhost:<port> (PROXY_ORIGIN, the embedded default's
other loopback name). pytest-django's live_server is WSGI and never reaches the proxy's ASGI routing.

1. A customer signed in on the site opens a hostile upstream page in browser mode: its script reads
   document.cookie, calls /api/v1/users/me and posts token purchases with credentials; it gets
   nothing and changes nothing (balance, tokens, ledger). The same page fetched on the platform's
   origin under /api/v1/proxy/ is sandboxed: its script never runs, the document has no access to
   the site's cookies.
2. A page with root-relative links, CSS, an image and a script renders fully in browser mode.

Screenshots: var/screenshots/proxy-*.png. Skipped with the reason where Chromium or Playwright is
missing, except in CI (`CI` set), where that is a failure.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest
from django.db import connections

from accounts.models import User
from currency.models import Transaction
from tests.factories import DEFAULT_PASSWORD, UserFactory, fund
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, SCREENSHOTS, sync_playwright
from tests.upstream import DEVICE, LiveServer, _close_thread_connections, issue, upstream_server  # noqa: F401
from tokens.models import AccessToken

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not IN_CI and (not CHROMIUM.exists() or sync_playwright is None),
        reason="browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) "
        "and Playwright (requirements-dev.txt)",
    ),
]


@pytest.fixture(scope="module")
def dual_server():
    from zenzefi.asgi import application

    server = LiveServer(application, loopback_names=True).start()
    yield server
    server.stop()


@pytest.fixture
def sites(settings, dual_server, upstream_server):
    from zenzefi.asgi import proxy_application

    site = f"http://127.0.0.1:{dual_server.port}"
    proxy_origin = f"http://localhost:{dual_server.port}"
    settings.BACKEND_URL = site
    settings.PROXY_ORIGIN = proxy_origin
    settings.ZENZEFI_TARGET_URL = upstream_server.base
    settings.PROXY_COUNTER_FLUSH_SECONDS = 0
    # Plain http on loopback: cookies without Secure (the attributes are tested in test_proxy_origin).
    settings.COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    proxy_application.breaker.reset()
    proxy_application._activated.clear()
    upstream_server.requests.clear()
    yield site, proxy_origin
    _close_thread_connections()


@pytest.fixture
def browser(monkeypatch):
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.fail("CI must run the browser test: install chromium (apt) and playwright (pip).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # fixed names: each run overwrites its own
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = chromium.new_context(locale="en-US", viewport={"width": 1100, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            chromium.close()
            connections.close_all()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def entry_url(site: str, plain: str, next_path: str) -> str:
    """What the desktop client does: POST /api/v1/proxy/session with the two headers."""
    resp = httpx.post(
        f"{site}/api/v1/proxy/session",
        params={"next": next_path},
        headers={"X-Access-Token": plain, "X-Device-ID": DEVICE},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["url"]


def state(user: User) -> tuple:
    user.refresh_from_db()
    return (
        user.balance,
        AccessToken.objects.filter(user=user).count(),
        list(Transaction.objects.filter(user=user).values_list("id", "amount", "balance_after")),
    )


def test_hostile_upstream_page_gets_nothing_and_changes_nothing(browser, sites):
    site, proxy_origin = sites
    customer = UserFactory(username="olga")
    fund(customer, "50.00")
    _, plain = issue(customer)
    page = browser.new_page()

    # Signed in on the site: session and CSRF cookies live on 127.0.0.1.
    page.goto(f"{site}/accounts/login/")
    page.fill("input[name=identifier]", "olga")
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.locator("main button[type=submit]").click()
    page.wait_for_url(f"{site}/account/")
    site_cookies = {c["name"] for c in browser.cookies(site)}
    assert {"sessionid", "csrftoken"} <= site_cookies
    shot(page, "proxy-01-customer-signed-in-on-the-site")
    before = state(customer)
    assert before[0] == Decimal("50.00") and before[1] == 1

    # 1a. Browser mode: the hostile page runs on the proxy origin.
    page.goto(entry_url(site, plain, f"/attack.html?site={quote(site, safe='')}"))
    page.wait_for_function("document.title === 'done'")
    assert page.url == f"{proxy_origin}/attack.html?site={quote(site, safe='')}"
    result = page.evaluate("window.__result")
    shot(page, "proxy-02-hostile-page-in-browser-mode")
    assert result["origin"] == proxy_origin
    assert result["cookie"] == ""  # the proxy cookie is httponly; the site's are not on this host
    # Same-origin calls reach the upstream (its echo), never the platform's API.
    for name in ("me_here", "buy_here"):
        echo = json.loads(result[name]["body"])
        assert echo["path"] in ("/api/v1/users/me", "/api/v1/tokens/purchase"), name
        sent = {k.lower(): v for k, v in echo["headers"]}
        assert "sessionid" not in sent.get("cookie", "") and "csrftoken" not in sent.get("cookie", "")
    # Cross-origin calls to the site: unreadable (no CORS) and without the customer's cookies.
    assert result["me_site"] == "error:TypeError"
    assert result["buy_site"] == "error:TypeError"  # the JSON preflight is refused: never sent
    assert result["buy_form"] == {"status": 0, "body": ""}  # opaque; sent without cookies
    blob = json.dumps(result)
    assert "olga" not in blob and plain not in blob
    assert state(customer) == before

    # 1b. The same page on the platform's origin (the desktop client's path) is sandboxed.
    def with_token(route):
        headers = {**route.request.headers, "x-access-token": plain, "x-device-id": DEVICE}
        route.continue_(headers=headers)

    sandboxed = browser.new_page()
    sandboxed.route(f"{site}/api/v1/proxy/**", with_token)
    response = sandboxed.goto(f"{site}/api/v1/proxy/attack.html?site={quote(site, safe='')}")
    assert response.status == 200
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    sandboxed.wait_for_timeout(1000)  # time for a script that would run
    assert sandboxed.evaluate("window.__result === undefined")
    assert sandboxed.text_content("#out") == "running"
    cookie = sandboxed.evaluate(
        "() => { try { return document.cookie } catch (e) { return 'blocked:' + e.name } }"
    )
    assert cookie == "blocked:SecurityError"  # an opaque origin: no access to the site's cookies
    shot(sandboxed, "proxy-03-same-page-on-the-platform-origin-sandboxed")
    assert state(customer) == before
    assert {c["name"] for c in browser.cookies(site)} == site_cookies  # still signed in there


def test_page_with_root_relative_assets_renders_in_browser_mode(browser, sites, upstream_server):
    site, proxy_origin = sites
    customer = UserFactory(username="pavel")
    _, plain = issue(customer)
    page = browser.new_page()
    page.goto(entry_url(site, plain, "/render/index.html"))
    page.wait_for_url(f"{proxy_origin}/render/index.html")
    page.wait_for_function("window.__ran === true")
    assert page.text_content("#status") == "script ran"
    color = page.eval_on_selector("#box", "el => getComputedStyle(el).color")
    assert color == "rgb(10, 120, 30)"
    assert page.eval_on_selector("#logo", "img => img.complete && img.naturalWidth") == 4
    cookies = browser.cookies(proxy_origin)
    assert [c["name"] for c in cookies] == ["zz_proxy"] and cookies[0]["httpOnly"]
    assert cookies[0]["domain"] == "localhost"  # host-only on the proxy origin
    assert browser.cookies(site) == []  # nothing on the site's origin
    shot(page, "proxy-04-page-rendered-in-browser-mode")

    page.click("#next")
    page.wait_for_url(f"{proxy_origin}/render/second.html")
    assert page.eval_on_selector("#box", "el => getComputedStyle(el).color") == "rgb(10, 120, 30)"
    shot(page, "proxy-05-link-navigation-stays-on-the-proxy-origin")
    # Every asset had its own route; the echo saw only the browser's own favicon requests.
    assert {r["path"] for r in upstream_server.requests} <= {"/favicon.ico"}
