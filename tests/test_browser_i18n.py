"""One language per screen, in a real browser (Playwright driving Debian's Chromium, headless,
like tests/test_browser.py): a Russian customer's transaction history and bundles page carry no
English data; the admin in Russian (column headers, the dashboard with seeded traffic: nonzero
totals, dated UTC axes drawn by the vendored Chart.js). Screenshots go to var/screenshots/:
i18n-ru-history.png, i18n-ru-bundles.png, admin-ru-users.png, admin-ru-transactions.png,
admin-dashboard-day.png, admin-dashboard-month.png.

Skipped, with the reason, where /usr/bin/chromium or Playwright is missing, except in CI (`CI`
set), where that is a failure."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from accounts.models import User
from tests.factories import UserFactory
from tests.test_admin_dashboard import seed_traffic
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, SCREENSHOTS, sync_playwright
from tests.test_i18n_ledger import STORED_ENGLISH, _history

pytestmark = pytest.mark.skipif(
    not IN_CI and (not CHROMIUM.exists() or sync_playwright is None),
    reason="browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) "
    "and Playwright (requirements-dev.txt)",
)

# English the seeded Russian pages must not show (ledger texts as stored, bundle names, labels).
ENGLISH = (
    *STORED_ENGLISH,
    "Starter Pack",
    "Pro Bundle",
    "Ultimate Package",
    "Month Duo",
    "Five 24-hour tokens",
    "Full access",
    "Purchase",
    "Refund",
    "Deposit",
    "hours",
)


@pytest.fixture
def browser(live_server, monkeypatch):
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.fail("CI must run the browser test: install chromium (apt) and playwright (pip).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()


def signed_in_page(browser, live_server, user):
    """A browser page signed in as `user` (a session made by Django's test client), whose
    browser asks for English: the saved preference must win."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    return context.new_page()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def english_in(text: str) -> list[str]:
    return [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", text)]


def test_russian_customer_history_and_bundles_have_no_english(browser, live_server):
    customer = UserFactory(username="olga", language="ru")
    _history(customer)
    page = signed_in_page(browser, live_server, customer)

    page.goto(f"{live_server.url}/account/transactions/")
    main = page.locator("main").inner_text()
    assert "История операций" in main
    assert "Набор «Стартовый набор»: 5 × 24 часа (Полный доступ)" in main
    assert "Тестовое пополнение" in main and "Возврат за токен" in main and "Покупка" in main
    assert not english_in(main), english_in(main)
    shot(page, "i18n-ru-history")

    page.goto(f"{live_server.url}/account/bundles/")
    main = page.locator("main").inner_text()
    assert "Стартовый набор" in main and "Профессиональный набор" in main
    assert not english_in(main), english_in(main)
    shot(page, "i18n-ru-bundles")
    page.context.close()


def test_russian_admin_and_dashboard_with_traffic(browser, live_server):
    seeded = seed_traffic()
    boss = User.objects.create_superuser(
        username="boss", email="boss@example.com", password="x-Pass-12345", language="ru"
    )
    page = signed_in_page(browser, live_server, boss)

    page.goto(f"{live_server.url}/admin/accounts/user/")
    headers = page.locator("#result_list thead").inner_text().lower()  # shown in capitals
    assert "имя пользователя" in headers and "баланс" in headers and "дата регистрации" in headers
    assert "Выберите пользователь для изменения" in page.locator("h1").inner_text()
    assert "Zenzefi" in page.locator("#site-name").inner_text()
    for english in ("Username", "Email address", "Full name", "Balance", "Tier", "Date joined", "user"):
        assert english.lower() not in headers, english
    shot(page, "admin-ru-users")

    page.goto(f"{live_server.url}/admin/currency/transaction/")
    headers = page.locator("#result_list thead").inner_text().lower()
    assert "баланс после" in headers and "описание" in headers
    rows = page.locator("#result_list tbody").inner_text()
    assert "Токен доступа на 24 часа (Полный доступ)" in rows
    shot(page, "admin-ru-transactions")

    for period, axis in (("day", "Начало часа, UTC"), ("month", "Дата, UTC")):
        page.goto(f"{live_server.url}/admin/analytics/?period={period}")
        requests = int(page.locator("#stat-requests").inner_text())
        assert requests == seeded["requests"] > 0
        assert page.locator('[data-total="proxy_requests"]').inner_text() == str(requests)
        assert page.locator("#stat-revenue").inner_text() == "19,00"
        # Chart.js drew every chart, with a titled time axis of dates and a titled value axis.
        page.wait_for_function(
            "() => document.querySelectorAll('canvas[data-chart]').length === 4 && "
            "[...document.querySelectorAll('canvas[data-chart]')].every(c => Chart.getChart(c))"
        )
        axes = page.evaluate(
            """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
                const chart = Chart.getChart(c);
                return {x: chart.options.scales.x.title.text, y: chart.options.scales.y.title.text,
                        first: chart.data.labels[0], n: chart.data.labels.length,
                        total: chart.data.datasets[0].data.reduce((a, b) => a + b, 0)};
            })"""
        )
        assert all(a["x"] == axis for a in axes)
        assert [a["y"] for a in axes] == [
            "Выручка, ZNC",
            "Покупки, шт.",
            "Запросы через прокси, шт.",
            "Новые пользователи, шт.",
        ]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d( \d\d:\d\d)?", axes[0]["first"]) and axes[0]["n"] >= 24
        assert axes[2]["total"] == requests and axes[0]["total"] == 19
        shot(page, f"admin-dashboard-{period}")
    page.context.close()
