"""Reloads on every money page, in a real browser (issue 13): Playwright driving Debian's
Chromium (headless) against pytest-django's live server, as in tests/test_browser.py.

For the token, bundle, gift and top-up pages: buy, then reload the result page (Chromium
re-sends the POST), go back and submit again, and double click the pay button (with JavaScript
on, and off so that both clicks reach the server). Each money page charges once per form; the
repeat says "already made" and never shows a plaintext again. Screenshots: var/screenshots/money-*.png.

Skipped, with the reason, where /usr/bin/chromium or Playwright is missing, except in CI
(`CI` set), where that is a failure.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from bundles.models import TokenBundle
from currency.models import Transaction, TransactionType
from gifts.models import GiftCode
from payments.models import Payment
from tests.factories import UserFactory, fund
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, SCREENSHOTS, sync_playwright
from tests.test_ledger import assert_ledger_consistent
from tokens.models import AccessToken

if sync_playwright is not None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

pytestmark = pytest.mark.skipif(
    not IN_CI and (not CHROMIUM.exists() or sync_playwright is None),
    reason="browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) "
    "and Playwright (requirements-dev.txt)",
)

ALREADY = "already-made"


@pytest.fixture
def customer(live_server):
    user = UserFactory(username="vera", language="en")
    fund(user, "500")
    client = Client()
    client.force_login(user)
    return user, client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture(scope="module")
def fresh_screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("money-*.png"):
        old.unlink()


@pytest.fixture
def browser(live_server, monkeypatch, fresh_screenshots):
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.fail("CI must run the browser test: install chromium (apt) and playwright (pip).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


def signed_in_page(browser, live_server, session: str, *, javascript: bool = True):
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    page = context.new_page()
    # A reload of a POST result may ask to resend the form: say yes, as an impatient customer would.
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"money-{name}.png"), full_page=True)


def balance(user) -> Decimal:
    user.refresh_from_db(fields=["balance"])
    return user.balance


def reload_resends(page) -> None:
    """F5 on a POST result: Chromium sends the POST again (the page says "already made")."""
    with page.expect_request(lambda request: request.method == "POST"):
        page.reload()
    expect(page.get_by_test_id(ALREADY)).to_be_visible()


def resend_form(page) -> None:
    """F5 on Chromium's error page: it resends the POST (the error page may need a moment
    before it takes the reload)."""
    for attempt in range(20):
        try:
            with page.expect_request(lambda request: request.method == "POST"):
                page.reload()
            page.wait_for_load_state()
            return
        except PlaywrightError as exc:
            if "Not attached to an active page" not in str(exc) or attempt == 19:
                raise
            page.wait_for_timeout(250)


def back_and_submit(page, button: str) -> None:
    """The back button, then the pay button again. Chromium shows a POST result that is not
    cached as "Confirm Form Resubmission": reloading it resends that POST (the review), which
    shows the same confirm form again (or, for a top-up form whose checkout was paid already,
    "already made" at once)."""
    try:
        page.go_back()
        resend = False
    except PlaywrightError as exc:  # Chromium's "Confirm Form Resubmission" page
        assert "ERR_CACHE_MISS" in str(exc)
        resend = True
        page.wait_for_load_state()
    pay = page.get_by_role("button", name=button)
    already = page.get_by_test_id(ALREADY)
    if resend or not pay.count():
        for attempt in range(3):  # a busy machine may leave the error page up after one F5
            resend_form(page)
            try:
                expect(already.or_(pay).first).to_be_visible(timeout=5_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise
    if not already.count():
        pay.click()
    expect(already).to_be_visible()


def test_token_page_charges_once_per_form(browser, live_server, customer):
    user, session = customer
    page = signed_in_page(browser, live_server, session)
    page.goto(f"{live_server.url}/account/tokens/buy/")
    page.get_by_label("24 hours — 18.00 ZNC").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Pay 18.00 ZNC").click()
    plaintext = page.get_by_test_id("token-value").input_value()
    shot(page, "token-bought")

    reload_resends(page)
    assert plaintext not in page.content()
    expect(page.get_by_role("link", name="Revoke with a full refund")).to_be_visible()
    shot(page, "token-reload")
    back_and_submit(page, "Pay 18.00 ZNC")
    shot(page, "token-back-submit")
    assert AccessToken.objects.filter(user=user).count() == 1 and balance(user) == Decimal("482.00")

    for javascript in (True, False):  # without JavaScript both clicks reach the server
        page = signed_in_page(browser, live_server, session, javascript=javascript)
        page.goto(f"{live_server.url}/account/tokens/buy/")
        page.get_by_label("24 hours — 18.00 ZNC").check()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Pay 18.00 ZNC").dblclick()
        page.wait_for_load_state()
        shot(page, f"token-dblclick{'' if javascript else '-nojs'}")
    assert AccessToken.objects.filter(user=user).count() == 3
    assert balance(user) == Decimal("446.00")
    assert Transaction.objects.filter(user=user, type=TransactionType.PURCHASE).count() == 3
    assert_ledger_consistent(user)


def test_bundle_page_charges_once_per_form(browser, live_server, customer):
    user, session = customer
    # The live server's database is emptied between tests: the seeded bundle is made again.
    bundle, _ = TokenBundle.objects.get_or_create(
        name="Starter Pack", defaults={"token_count": 5, "duration_hours": 24, "discount_percent": 10}
    )
    page = signed_in_page(browser, live_server, session)
    page.goto(f"{live_server.url}/account/bundles/")
    page.get_by_role("article").filter(has_text="Starter Pack").get_by_role("button", name="Buy").click()
    page.get_by_role("button", name="Pay 81.00 ZNC").click()
    expect(page.get_by_test_id("token-value")).to_have_count(5)
    shot(page, "bundle-bought")
    reload_resends(page)
    shot(page, "bundle-reload")
    back_and_submit(page, "Pay 81.00 ZNC")
    shot(page, "bundle-back-submit")
    assert AccessToken.objects.filter(user=user).count() == 5 and balance(user) == Decimal("419.00")

    page.goto(f"{live_server.url}/account/bundles/{bundle.pk}/buy/")
    page.get_by_role("button", name="Pay 81.00 ZNC").dblclick()
    expect(page.get_by_test_id("token-value")).to_have_count(5)
    shot(page, "bundle-dblclick")
    assert AccessToken.objects.filter(user=user).count() == 10 and balance(user) == Decimal("338.00")
    assert_ledger_consistent(user)


def test_gift_page_charges_once_per_form(browser, live_server, customer):
    user, session = customer
    page = signed_in_page(browser, live_server, session)
    page.goto(f"{live_server.url}/account/gifts/")
    page.get_by_label("12 hours — 10.00 ZNC").check()
    page.get_by_role("button", name="Buy a gift code").click()
    page.get_by_role("button", name="Pay 10.00 ZNC").click()
    code = page.get_by_test_id("gift-code").input_value()
    shot(page, "gift-bought")
    reload_resends(page)
    assert code not in page.content()
    shot(page, "gift-reload")
    back_and_submit(page, "Pay 10.00 ZNC")
    shot(page, "gift-back-submit")
    assert GiftCode.objects.filter(buyer=user).count() == 1 and balance(user) == Decimal("490.00")

    page.goto(f"{live_server.url}/account/gifts/")
    page.get_by_label("12 hours — 10.00 ZNC").check()
    page.get_by_role("button", name="Buy a gift code").click()
    page.get_by_role("button", name="Pay 10.00 ZNC").dblclick()
    expect(page.get_by_test_id("gift-code")).to_be_visible()
    shot(page, "gift-dblclick")
    assert GiftCode.objects.filter(buyer=user).count() == 2 and balance(user) == Decimal("480.00")
    assert_ledger_consistent(user)


def test_topup_pages_credit_once_per_checkout(browser, live_server, customer):
    user, session = customer
    page = signed_in_page(browser, live_server, session)
    page.goto(f"{live_server.url}/account/topup/")
    page.get_by_label("Amount, ZNC").fill("100")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("checkout-amount")).to_have_text("100.00 ZNC")
    with page.expect_request(lambda request: request.method == "POST"):
        page.reload()  # F5 on the checkout: the same checkout again, no second payment
    expect(page.get_by_test_id("checkout-amount")).to_have_text("100.00 ZNC")
    shot(page, "topup-checkout-reload")
    assert Payment.objects.filter(user=user).count() == 1
    page.get_by_role("button", name="Pay 100.00 ZNC").click()
    expect(page.get_by_test_id("balance")).to_have_text("600.00")
    back_and_submit(page, "Pay 100.00 ZNC")
    shot(page, "topup-back-submit")
    reload_resends(page)
    shot(page, "topup-reload")
    assert balance(user) == Decimal("600.00")

    for javascript in (True, False):
        page = signed_in_page(browser, live_server, session, javascript=javascript)
        page.goto(f"{live_server.url}/account/topup/")
        page.get_by_label("Amount, ZNC").fill("50")
        page.get_by_role("button", name="Continue to payment").dblclick()
        page.get_by_role("button", name="Pay 50.00 ZNC").dblclick()
        expect(page.get_by_test_id("balance")).to_have_text(f"{650 if javascript else 700}.00")
        shot(page, f"topup-dblclick{'' if javascript else '-nojs'}")
    assert balance(user) == Decimal("700.00")
    assert Transaction.objects.filter(user=user, type=TransactionType.DEPOSIT).count() == 4
    assert Payment.objects.filter(user=user).count() == 3
    assert_ledger_consistent(user)
