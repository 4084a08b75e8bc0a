"""One language per screen: ledger descriptions rendered at display time from the transaction's
type and reference in the reader's language (pages, admin, REST API), bundle names and
descriptions in both languages, localized amounts in emails."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import User
from bundles.models import TokenBundle
from bundles.services import bundle_purchase
from currency.descriptions import describe
from currency.models import Transaction, TransactionType
from currency.services import balance_change
from gifts.services import gift_purchase
from notifications import services as notifications
from payments.deposits import deposit_mock
from payments.services import payment_complete, payment_create
from tests.factories import UserFactory
from tokens.services import token_purchase, token_revoke

pytestmark = pytest.mark.django_db

STORED_ENGLISH = ("Access token", "Mock top-up", "Refund for token", "Bundle ", "Gift code", "Top-up via")


def default_bundles() -> None:
    """The four default bundles in both languages, as migrations 0002/0004 make them (a test
    after a transactional one finds the tables flushed)."""
    english = importlib.import_module("bundles.migrations.0002_default_bundles").DEFAULTS
    russian = importlib.import_module("bundles.migrations.0004_default_bundles_in_russian").RUSSIAN
    for values in english:
        name_ru, description_ru = russian[values["name"]]
        TokenBundle.objects.get_or_create(
            name=values["name"],
            defaults={
                **{k: v for k, v in values.items() if k != "name"},
                "scope": "full",
                "name_ru": name_ru,
                "description_ru": description_ru,
            },
        )


def _history(user: User) -> None:
    """A customer's ledger with every kind of row a customer sees."""
    default_bundles()
    deposit_mock(user=user, amount=Decimal("300"))
    issued = token_purchase(user=user, duration_hours=24, scope="full")
    token_revoke(token_id=issued.token.pk, actor=user, owner=user)
    starter = TokenBundle.objects.get(name="Starter Pack")
    bundle_purchase(user=user, bundle_id=starter.pk)
    gift_purchase(buyer=user, duration_hours=1, scope="certificates_only")
    payment = payment_create(user=user, amount=Decimal("50"), provider="mock")
    payment_complete(payment_id=payment.pk, source="test")
    balance_change(
        user=user,
        amount=Decimal("1"),
        transaction_type=TransactionType.ADJUSTMENT,
        description="goodwill",
        reference="admin:1",
    )


@pytest.fixture
def customer():
    user = UserFactory(username="olga", language="ru")
    _history(user)
    return user


def test_descriptions_render_in_the_readers_language_and_the_ledger_keeps_its_text(customer):
    rows = list(Transaction.objects.filter(user=customer).order_by("id"))
    stored = [row.description for row in rows]
    with translation.override("ru"):
        ru = describe(rows)
    with translation.override("en"):
        en = describe(rows)
    texts_ru = [ru[row.pk] for row in rows]
    texts_en = [en[row.pk] for row in rows]
    payment_id = rows[5].reference.split(":")[1]
    assert texts_ru[0] == "Тестовое пополнение"
    assert texts_ru[1] == "Токен доступа на 24 часа (Полный доступ)"
    assert texts_ru[2].startswith("Возврат за токен ") and texts_ru[2].endswith("…")
    assert texts_ru[3] == "Набор «Стартовый набор»: 5 × 24 часа (Полный доступ)"
    assert texts_ru[4].startswith("Подарочный код ") and texts_ru[4].endswith("(1 час, Только сертификаты)")
    assert texts_ru[5] == f"Пополнение через тестовую оплату (платёж №{payment_id})"
    assert texts_ru[6] == "Корректировка баланса: goodwill"
    assert texts_en[1] == "Access token 24 hours (Full access)"
    assert texts_en[3] == "Bundle Starter Pack: 5 × 24 hours (Full access)"
    # Append-only: the stored English text is untouched (re-read from the database).
    assert [row.description for row in Transaction.objects.filter(user=customer).order_by("id")] == stored
    assert stored[0] == "Mock top-up" and stored[1] == "Access token 24 h (full)"


def test_russian_history_page_shows_no_english_descriptions(customer):
    client = Client()
    client.force_login(customer)
    page = client.get("/account/transactions/").content.decode()
    assert "Набор «Стартовый набор»" in page and "Токен доступа на 24 часа" in page
    assert "Тестовое пополнение" in page and "Возврат за токен" in page
    for english in STORED_ENGLISH:
        assert english not in page, english
    customer.language = "en"
    customer.save(update_fields=["language"])
    page = client.get("/account/transactions/").content.decode()
    assert "Bundle Starter Pack: 5 × 24 hours (Full access)" in page


def test_api_descriptions_follow_accept_language_in_few_queries(customer):
    client = APIClient()
    client.force_authenticate(customer)
    with CaptureQueriesContext(connection) as queries:
        ru = client.get("/api/v1/currency/transactions", HTTP_ACCEPT_LANGUAGE="ru").json()
    en = client.get("/api/v1/currency/transactions").json()  # no header: English
    items_ru = ru["items"] if isinstance(ru, dict) and "items" in ru else ru.get("results", ru)
    items_en = en["items"] if isinstance(en, dict) and "items" in en else en.get("results", en)
    descriptions_ru = {item["description"] for item in items_ru}
    descriptions_en = {item["description"] for item in items_en}
    assert "Набор «Стартовый набор»: 5 × 24 часа (Полный доступ)" in descriptions_ru
    assert "Bundle Starter Pack: 5 × 24 hours (Full access)" in descriptions_en
    # Batched: one query per kind of reference, not one per row (7 rows of 6 kinds here).
    assert len(queries) <= 14


def test_bundle_names_in_both_languages_pages_and_api():
    default_bundles()
    user = UserFactory(language="ru")
    client = Client()
    client.force_login(user)
    ru = client.get("/account/bundles/").content.decode()
    assert "Стартовый набор" in ru and "Пять токенов на 24 часа" in ru
    assert "Starter Pack" not in ru and "Five 24-hour tokens" not in ru
    api = APIClient()
    api.force_authenticate(user)
    names_ru = {b["name"] for b in _items(api.get("/api/v1/bundles/", HTTP_ACCEPT_LANGUAGE="ru").json())}
    names_en = {b["name"] for b in _items(api.get("/api/v1/bundles/", HTTP_ACCEPT_LANGUAGE="en").json())}
    assert {"Стартовый набор", "Профессиональный набор", "Максимальный пакет", "Месяц на двоих"} <= names_ru
    assert {"Starter Pack", "Pro Bundle", "Ultimate Package", "Month Duo"} <= names_en


def _items(body):
    if isinstance(body, dict):
        return body.get("items") or body.get("results") or []
    return body


def test_staff_edit_both_languages_in_the_admin(admin_client):
    default_bundles()
    bundle = TokenBundle.objects.get(name="Pro Bundle")
    page = admin_client.get(f"/admin/bundles/tokenbundle/{bundle.pk}/change/").content.decode()
    assert 'name="name_ru"' in page and 'name="description_ru"' in page
    assert "Профессиональный набор" in page


def test_russian_payment_email_writes_localized_amounts():
    subject, text, html = notifications.email_render(
        template="payment_received",
        language="ru",
        context={"amount": "150.00", "balance": "1234.50", "username": "olga"},
    )
    assert "150,00" in subject and "150,00" in text and "150,00" in html
    assert "150.00" not in subject + text + html
    assert "1\xa0234,50" in text
    subject, text, _html = notifications.email_render(
        template="payment_received",
        language="en",
        context={"amount": "150.00", "balance": "1234.50", "username": "olga"},
    )
    assert "150.00" in subject and "1,234.50" in text
