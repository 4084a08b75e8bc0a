"""Small page fixes of issue 13 in a real browser (Chromium via Playwright, as tests/test_browser.py):
help text stays neutral beside a field error, and the Connect page works with and without JavaScript.
Screenshots: var/screenshots/pages-*.png."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from tests.factories import UserFactory
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, SCREENSHOTS, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect

pytestmark = pytest.mark.skipif(
    not IN_CI and (not CHROMIUM.exists() or sync_playwright is None),
    reason="browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) "
    "and Playwright (requirements-dev.txt)",
)


@pytest.fixture
def browser(live_server, monkeypatch):
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.fail("CI must run the browser test: install chromium (apt) and playwright (pip).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


def new_page(browser, *, javascript: bool = True, session: str | None = None, url: str = ""):
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    context.set_default_timeout(15_000)
    if session:
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": url}])
    return context.new_page()


def color(page, selector: str) -> str:
    return page.eval_on_selector(selector, "element => getComputedStyle(element).color")


def test_help_text_stays_neutral_beside_an_error(browser, live_server):
    page = new_page(browser)
    page.goto(f"{live_server.url}/accounts/signup/")
    neutral = color(page, "#id_username_helptext")
    page.get_by_label("Email").fill("eva@example.com")
    page.get_by_label("Username", exact=True).fill("eva!")  # not allowed: a field error
    page.get_by_label("Password", exact=True).fill("Zenzefi-2026-strong")
    page.get_by_label("Password again").fill("Zenzefi-2026-strong")
    page.locator("main").get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_username")).to_have_attribute("aria-invalid", "true")
    error = page.locator(".field:has(#id_username) .field-error").first
    expect(error).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "pages-help-text-beside-error.png"), full_page=True)
    assert color(page, "#id_username_helptext") == neutral
    assert error.evaluate("element => getComputedStyle(element).color") != neutral


@pytest.mark.parametrize("javascript", [True, False])
def test_connect_page_with_and_without_javascript(browser, live_server, javascript):
    user = UserFactory(language="en")
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page = new_page(browser, javascript=javascript, session=session, url=live_server.url)
    page.goto(f"{live_server.url}/account/tokens/")
    page.get_by_role("link", name="How to connect with a token").click()
    expect(page.get_by_role("heading", name="How to connect with a token")).to_be_visible()
    example = page.get_by_test_id("curl-example")
    expect(example).to_be_visible()
    assert "X-Access-Token: <YOUR_TOKEN>" in example.input_value()
    copy = page.get_by_role("button", name="Copy", exact=True)
    if javascript:
        expect(copy).to_be_visible()
    else:
        expect(copy).to_be_hidden()
    page.screenshot(
        path=str(SCREENSHOTS / f"pages-connect{'' if javascript else '-nojs'}.png"), full_page=True
    )
