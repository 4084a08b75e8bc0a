"""The main customer path in a real browser: Playwright driving Debian's Chromium (headless)
against pytest-django's live server.

sign up → top up (mock checkout) → buy a 24 h token → see it once → revoke it and see the
refund in the balance → switch the language. Each step leaves a screenshot in
var/screenshots/ (CI prints the list at the end of its output).

Skipped, with the reason, where /usr/bin/chromium or Playwright is missing, except in CI
(`CI` set), where that is a failure. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from accounts.models import User
from currency.models import Transaction, TransactionType
from tokens.models import AccessToken, token_digest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
IN_CI = bool(os.environ.get("CI"))

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - requirements-dev.txt pins it
    sync_playwright = None

pytestmark = pytest.mark.skipif(
    not IN_CI and (not CHROMIUM.exists() or sync_playwright is None),
    reason="browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) "
    "and Playwright (requirements-dev.txt)",
)


@pytest.fixture
def browser_page(live_server, monkeypatch):
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.fail("CI must run the browser test: install chromium (apt) and playwright (pip).")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM checks are
    # plain synchronous code that never runs inside it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("[0-9][0-9]-*.png"):  # its own; other browser tests keep theirs
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop runs use their own connection (Django's
            # connections are context-local): close it, or the test database cannot be dropped.
            connections.close_all()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_customer_path_in_a_browser(browser_page, live_server):
    page = browser_page
    base = live_server.url

    # 1. Sign up: lands on the dashboard, signed in.
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Token prices")).to_be_visible()
    shot(page, "01-landing")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Email").fill("anna@example.com")
    page.get_by_label("Username", exact=True).fill("anna")
    page.get_by_label("Full name").fill("Anna Petrova")
    page.get_by_label("Password", exact=True).fill("Zenzefi-2026-strong")
    page.get_by_label("Password again").fill("Zenzefi-2026-strong")
    shot(page, "02-signup")
    page.locator("main").get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/account/")
    expect(page.get_by_text("Welcome, anna! Your account is ready.")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("0.00")
    shot(page, "03-dashboard-new")

    # 2. Top up 100 ZNC through the mock checkout.
    page.get_by_role("navigation").get_by_role("link", name="Top up").click()
    page.get_by_label("Amount, ZNC").fill("100")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("checkout-amount")).to_have_text("100.00 ZNC")
    shot(page, "04-mock-checkout")
    page.get_by_role("button", name="Pay 100.00 ZNC").click()
    expect(page).to_have_url(f"{base}/account/")
    expect(page.get_by_test_id("balance")).to_have_text("100.00")
    shot(page, "05-topped-up")

    # 3. Buy a 24 h token: choose, review, pay.
    page.get_by_role("navigation").get_by_role("link", name="Buy a token").click()
    page.get_by_label("24 hours — 18.00 ZNC").check()
    page.get_by_label("Full access").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("price")).to_have_text("18.00 ZNC")
    shot(page, "06-confirm-purchase")
    page.get_by_role("button", name="Pay 18.00 ZNC").dblclick()  # an impatient double click buys once

    # 4. The token is shown once, with a working copy button (JavaScript is on here).
    token_field = page.get_by_test_id("token-value")
    plaintext = token_field.input_value()
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", plaintext)
    expect(page.get_by_role("button", name="Copy", exact=True)).to_be_visible()
    shot(page, "07-token-shown-once")
    token = AccessToken.objects.get(user__username="anna")  # exactly one
    assert token.digest == token_digest(plaintext) and token.duration_hours == 24
    page.get_by_role("button", name="I have copied it").click()
    expect(page.get_by_role("heading", name="My tokens")).to_be_visible()
    assert plaintext not in page.content()
    page.goto(f"{base}/account/")
    assert plaintext not in page.content()
    expect(page.get_by_test_id("balance")).to_have_text("82.00")

    # 5. Revoke it: the confirmation shows the refund; the balance gets it back.
    page.goto(f"{base}/account/tokens/")
    page.get_by_role("link", name="Revoke").click()
    expect(page.get_by_test_id("refund")).to_have_text("18.00 ZNC")
    shot(page, "08-revoke-confirm")
    page.get_by_role("button", name="Revoke and refund").click()
    expect(page.get_by_text(f"Token {token.prefix}… revoked. Refunded: 18.00 ZNC.")).to_be_visible()
    expect(page.get_by_test_id("nav-balance")).to_have_text("100.00")
    shot(page, "09-revoked")
    page.goto(f"{base}/account/")
    expect(page.get_by_test_id("balance")).to_have_text("100.00")
    shot(page, "10-dashboard-refunded")

    # 6. Switch to Russian: the choice is saved and the pages follow it.
    page.get_by_role("button", name="Русский").click()
    expect(page.get_by_role("heading", name="Обзор")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("100,00")
    shot(page, "11-dashboard-russian")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/account/transactions/")
    expect(page.get_by_role("heading", name="История операций")).to_be_visible()
    shot(page, "12-history-russian-mobile")

    user = User.objects.get(username="anna")
    assert user.language == "ru" and user.balance == Decimal("100.00")
    assert list(Transaction.objects.filter(user=user).order_by("id").values_list("type", flat=True)) == [
        TransactionType.DEPOSIT,
        TransactionType.PURCHASE,
        TransactionType.REFUND,
    ]
    assert len(list(SCREENSHOTS.glob("[0-9][0-9]-*.png"))) == 12
