"""Browser mode on its own origin (SPEC §8, issue 11 item 2), over HTTP through a real uvicorn.

The proxy origin is http://localhost:<port> (the embedded default's other loopback name); the
client reaches it with that Host header. The browser itself is in tests/test_browser_proxy.py.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from django.test import Client

from proxy.asgi import is_proxy_origin
from proxy.models import ProxySession
from tests.factories import UserFactory
from tests.upstream import (  # noqa: F401
    DEVICE,
    creds,
    customer,
    live_platform,
    proxy,
    token,
    upstream_server,
)
from zenzefi.kv import get_kv
from zenzefi.settings import _other_loopback

pytestmark = pytest.mark.django_db(transaction=True)
SANDBOX = "sandbox"


@pytest.fixture
def origin(proxy, live_platform, settings):
    """An httpx client on the proxy origin (Host: localhost:<port>), no redirects followed."""
    settings.PROXY_ORIGIN = f"http://localhost:{live_platform.port}"
    host = f"localhost:{live_platform.port}"
    with httpx.Client(base_url=live_platform.url, headers={"Host": host}, timeout=30) as client:
        yield client


def enter(proxy, origin, plain: str, device: str = DEVICE, next_path: str | None = None) -> httpx.Response:
    params = {"next": next_path} if next_path else None
    resp = proxy.post("/session", headers=creds(plain, device), params=params)
    assert resp.status_code == 200, resp.text
    url = urlsplit(resp.json()["url"])
    return origin.get(url.path + (f"?{url.query}" if url.query else ""))


def cookie_of(resp: httpx.Response, name: str) -> str:
    header = next(h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{name}="))
    return header


def test_proxy_origin_default_is_the_other_loopback_name():
    assert _other_loopback("http://127.0.0.1:8000") == "http://localhost:8000"
    assert _other_loopback("https://localhost:8443/") == "https://127.0.0.1:8443"
    assert _other_loopback("https://zz.example.com") == ""


def test_host_matching(settings):
    settings.PROXY_ORIGIN = "https://proxy.example.com"

    def scope(host: bytes) -> dict:
        return {"headers": [(b"host", host)]}

    assert is_proxy_origin(scope(b"proxy.example.com"))
    assert is_proxy_origin(scope(b"PROXY.example.com:443"))
    assert not is_proxy_origin(scope(b"proxy.example.com:8443"))
    assert not is_proxy_origin(scope(b"zz.example.com"))
    assert not is_proxy_origin({"headers": []})
    settings.PROXY_ORIGIN = ""
    assert not is_proxy_origin(scope(b"proxy.example.com"))


def test_session_answers_a_one_time_link_that_sets_a_host_only_cookie(proxy, origin, token, settings):
    row, plain = token
    resp = proxy.post("/session", headers=creds(plain))
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"url", "expires_in"} and body["expires_in"] == settings.PROXY_ENTRY_TTL
    assert re.fullmatch(
        re.escape(settings.PROXY_ORIGIN) + r"/__zenzefi/enter/[A-Za-z0-9_-]{40,}", body["url"]
    )
    assert "set-cookie" not in resp.headers  # nothing on the platform's origin
    assert plain not in body["url"]

    path = urlsplit(body["url"]).path
    opened = origin.get(path)
    assert opened.status_code == 302
    assert opened.headers["location"] == "/"
    assert opened.headers["referrer-policy"] == "no-referrer"
    cookie = cookie_of(opened, settings.PROXY_SESSION_COOKIE)
    attributes = [a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]]
    assert "domain" not in attributes  # host-only: the proxy origin and nothing else
    for attribute in ("HttpOnly", "Path=/", "Secure", "SameSite=Lax"):
        assert attribute in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
    assert 0 < max_age <= settings.PROXY_SESSION_COOKIE_MAX_AGE
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert plain not in cookie and get_kv().get(f"pxck:{sid}") == {"d": row.digest, "dev": DEVICE}

    # Single use: the same link again is refused and sets nothing.
    again = origin.get(path)
    assert again.status_code == 401 and again.json()["code"] == "entry_invalid"
    assert "set-cookie" not in again.headers
    assert origin.get("/__zenzefi/enter/made-up-code").json()["code"] == "entry_invalid"


def test_browser_mode_every_path_is_the_upstream_path(proxy, origin, token, upstream_server, settings):
    row, plain = token
    sid = cookie_of(enter(proxy, origin, plain), settings.PROXY_SESSION_COOKIE).split(";")[0]
    platform = f"sessionid=platform-session; csrftoken=platform-csrf; {settings.LANGUAGE_COOKIE_NAME}=ru"
    cookies = {"Cookie": f"{sid}; {platform}; upstream_pref=kept"}
    for path in ("/css/a.css", "/api/v1/users/me", "/admin/", "/health", "/metrics", "/static/x.css", "/"):
        resp = origin.get(path, headers=cookies)
        assert resp.status_code == 200, path
        seen = resp.json()  # the upstream's echo, not a platform page
        assert seen["path"] == path
        headers = {k.lower(): v for k, v in seen["headers"]}
        assert headers["cookie"] == "upstream_pref=kept"  # platform and proxy cookies never forwarded
        assert "content-security-policy" not in resp.headers  # its own origin: no sandbox needed
    assert origin.get("/api/v1/proxy/status", headers=cookies).json()["path"] == "/api/v1/proxy/status"
    # The request claimed the device (one token = one device holds across both modes).
    assert ProxySession.objects.filter(token=row, device_id=DEVICE).count() == 1
    assert proxy.get("/echo/x", headers=creds(plain, "device-B")).status_code == 409


def test_no_platform_page_or_api_on_the_proxy_origin(origin, customer, upstream_server):
    """Without a browser-mode cookie nothing is served there: no page, API, admin, health or metrics
    of the platform, even for a signed-in customer's session cookie."""
    client = Client()
    client.force_login(customer)
    session = client.cookies["sessionid"].value
    for path in ("/", "/account/", "/api/v1/users/me", "/admin/", "/health", "/metrics", "/api/schema/"):
        resp = origin.get(path, headers={"Cookie": f"sessionid={session}"})
        assert resp.status_code == 401, path
        assert resp.json()["code"] == "unknown"
    assert origin.get("/__zenzefi/other").status_code == 404
    assert upstream_server.requests == []


def test_entry_next_is_validated(proxy, origin, token, settings):
    _, plain = token
    opened = enter(proxy, origin, plain, next_path="/certificates/list?x=1")
    assert opened.status_code == 302 and opened.headers["location"] == "/certificates/list?x=1"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "x", "/__zenzefi/enter/x"):
        resp = proxy.post("/session", headers=creds(plain), params={"next": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["code"] == "invalid_next"


def test_entry_code_is_bound_to_the_device_and_token(proxy, origin, token, customer, settings):
    from tokens.services import token_revoke

    row, plain = token
    assert proxy.get("/echo/1", headers=creds(plain, "device-A")).status_code == 200
    # Another device holds no session: its link is refused at once (409), not only on first use.
    resp = proxy.post("/session", headers=creds(plain, "device-B"))
    assert resp.status_code == 409
    url = proxy.post("/session", headers=creds(plain, "device-A")).json()["url"]
    token_revoke(token_id=row.pk, actor=customer)
    opened = origin.get(urlsplit(url).path)
    assert opened.status_code == 401 and opened.json()["code"] == "revoked"
    assert "set-cookie" not in opened.headers


def test_browser_mode_rewrites_to_the_proxy_origin(proxy, origin, token, upstream_server, settings):
    _, plain = token
    sid = cookie_of(enter(proxy, origin, plain), settings.PROXY_SESSION_COOKIE).split(";")[0]
    cookie = {"Cookie": sid}
    html = origin.get("/page.html", headers=cookie).text
    assert f'href="{settings.PROXY_ORIGIN}/certificates/list?x=1"' in html
    assert f"{upstream_server.base}/" not in html
    moved = origin.get("/redirect", headers=cookie)
    assert moved.headers["location"] == f"{settings.PROXY_ORIGIN}/certificates/target?y=2"
    assert origin.get("/redirect?to=rel", headers=cookie).headers["location"] == "/login"
    # An upstream cannot replace the proxy origin's session cookie; its own cookies lose Domain.
    evil = origin.get("/evil-cookie", headers=cookie)
    assert evil.headers.get_list("set-cookie") == ["upstream_pref=1; Path=/"]
    # The desktop path keeps BACKEND_URL/api/v1/proxy/….
    assert (
        f"{settings.BACKEND_URL}/api/v1/proxy/certificates/list"
        in proxy.get("/page.html", headers=creds(plain)).text
    )


def test_browser_mode_off_without_a_proxy_origin(proxy, token, settings):
    _, plain = token
    settings.PROXY_ORIGIN = ""
    resp = proxy.post("/session", headers=creds(plain))
    assert resp.status_code == 404 and resp.json()["code"] == "browser_mode_disabled"


def test_every_platform_origin_proxy_response_is_sandboxed(proxy, token, customer):
    """On the platform's origin, /api/v1/proxy/… answers carry CSP sandbox and nosniff, errors too."""
    from tests.upstream import issue

    _, plain = token
    _, narrow = issue(customer, scope="certificates_only")
    answers = [
        proxy.get("/page.html", headers=creds(plain)),  # proxied HTML
        proxy.get("/style.css", headers=creds(plain)),
        proxy.get("/status/500", headers=creds(plain)),
        proxy.get("/status", headers=creds(plain)),
        proxy.post("/session", headers=creds(plain)),
        proxy.get("/echo/x"),  # 401
        proxy.get("/echo/x", headers={"X-Access-Token": plain}),  # 400
        proxy.get("/echo/x", headers=creds(narrow)),  # 403
        proxy.get("/a/%2e%2e/b", headers=creds(plain)),  # 400 invalid_path
        proxy.get("/session", headers=creds(plain)),  # 405
    ]
    for resp in answers:
        assert resp.headers.get_list("content-security-policy") == [SANDBOX], resp.url
        assert resp.headers.get_list("x-content-type-options") == ["nosniff"], resp.url


def test_platform_cookies_stay_host_only(transactional_db, settings):
    """Session, CSRF and language cookies carry no Domain: they never reach the proxy origin."""
    assert settings.SESSION_COOKIE_DOMAIN is None
    assert settings.CSRF_COOKIE_DOMAIN is None
    assert settings.LANGUAGE_COOKIE_DOMAIN is None
    user = UserFactory(username="hostonly")
    user.set_password("Zenzefi-2026-strong")
    user.save()
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    login = client.post("/accounts/login/", {"identifier": "hostonly", "password": "Zenzefi-2026-strong"})
    assert login.status_code == 302
    language = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    seen = {}
    for resp in (page, login, language):
        for name, morsel in resp.cookies.items():
            seen[name] = morsel
    for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, settings.LANGUAGE_COOKIE_NAME):
        assert name in seen, name
        assert seen[name]["domain"] == "", name
        assert "domain=" not in seen[name].OutputString().lower(), name


def test_system_check_refuses_a_proxy_origin_on_the_site_host(settings):
    from proxy.checks import proxy_origin_check

    settings.BACKEND_URL = "https://zz.example.com"
    settings.PROXY_ORIGIN = "https://proxy.example.com"
    assert proxy_origin_check() == []
    settings.PROXY_ORIGIN = "https://zz.example.com:8443"  # another port, same host: shared cookies
    assert [m.id for m in proxy_origin_check()] == ["proxy.E002"]
    settings.PROXY_ORIGIN = "https://proxy.example.com/path"
    assert [m.id for m in proxy_origin_check()] == ["proxy.E001"]
    settings.PROXY_ORIGIN = ""
    assert [m.id for m in proxy_origin_check()] == ["proxy.W001"]
