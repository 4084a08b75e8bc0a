"""The Connect page (issue 13): how to use a token — the desktop client's headers, one device per
token, the platform's own URLs, browser mode on PROXY_ORIGIN, a copyable example with a placeholder;
linked from the nav, the token list and the purchase result; in Russian and English; no JavaScript
needed."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from tests.factories import UserFactory, fund

pytestmark = pytest.mark.django_db


def page(language: str = "en", **headers) -> str:
    user = UserFactory(language=language)
    client = Client(HTTP_ACCEPT_LANGUAGE=language, **headers)
    client.force_login(user)
    response = client.get("/account/connect/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_connect_page_explains_headers_urls_and_browser_mode(settings):
    settings.BACKEND_URL = "http://127.0.0.1:8150"
    settings.PROXY_ORIGIN = ""  # unset: derived from BACKEND_URL
    settings.SESSION_IDLE_MINUTES = 7
    body = page()
    assert "X-Access-Token" in body and "X-Device-ID" in body
    assert "http://127.0.0.1:8150/api/v1/proxy/" in body
    assert "GET http://127.0.0.1:8150/api/v1/proxy/status" in body
    assert "POST http://127.0.0.1:8150/api/v1/proxy/session" in body
    assert "http://localhost:8150" in body  # PROXY_ORIGIN derived from BACKEND_URL
    assert "After 7 minutes without requests" in body and "409" in body
    example = re.search(r'data-testid="curl-example">(.*?)</textarea>', body, re.S).group(1)
    assert 'curl -H "X-Access-Token: <YOUR_TOKEN>" -H "X-Device-ID: laptop-1"' in example
    # Usable without JavaScript: the example is a read-only field; the copy button needs JS.
    assert re.search(
        r'<button type="button" class="secondary copy-button" data-copy-target="connect-example" hidden>',
        body,
    )


def test_proxy_origin_setting_wins(settings):
    settings.BACKEND_URL = "https://zenzefi.example"
    settings.PROXY_ORIGIN = "https://proxy.zenzefi.example/"
    body = page()
    assert "https://proxy.zenzefi.example" in body and "https://zenzefi.example/api/v1/proxy/status" in body


def test_connect_page_in_russian():
    body = page("ru")
    assert "Как подключиться с токеном" in body and "X-Device-ID" in body and "<ВАШ_ТОКЕН>" in body
    assert "How to connect with a token" not in body


def test_connect_page_is_linked_from_the_nav_the_token_list_and_the_purchase():
    user = UserFactory(language="en")
    fund(user, "50")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    for path in ("/account/", "/account/tokens/"):
        assert 'href="/account/connect/"' in client.get(path).content.decode(), path
    buy = client.get("/account/tokens/buy/").content.decode()
    nonce = re.search(r'name="nonce" value="([^"]+)"', buy).group(1)
    done = client.post(
        "/account/tokens/buy/", {"duration_hours": "1", "scope": "full", "step": "confirm", "nonce": nonce}
    ).content.decode()
    assert 'data-testid="token-value"' in done and 'href="/account/connect/"' in done.split("</header>")[1]


def test_connect_page_needs_a_login():
    response = Client().get("/account/connect/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
