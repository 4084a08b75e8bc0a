"""The admin in Russian: every changelist, add and change page of every registered model, rendered
for a Russian-speaking superuser, shows no English model or field name (the list of English
names is taken from the models themselves), is branded Zenzefi, and names beat intervals with
correct Russian plurals."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User
from analytics.admin_labels import interval_label
from notifications.services import notification_create
from proxy.models import ProxySession
from tests.factories import UserFactory
from tests.test_i18n_ledger import _history
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db

OUR_APPS = {
    "accounts",
    "audit",
    "currency",
    "idempotency",
    "proxy",
    "tokens",
    "notifications",
    "webhooks",
    "bundles",
    "payments",
    "referrals",
    "renewals",
    "gifts",
}
# Third-party labels Django cannot translate: simplejwt's BlacklistedToken.token has no
# verbose name (its label is the field name).
UNTRANSLATABLE = {("/admin/token_blacklist/blacklistedtoken/add/", "token")}
# Words that read the same in both languages (codes, units, abbreviations).
SAME_IN_BOTH = {"id", "uid", "url", "znc", "ip", "email"}


def english_names() -> set[str]:
    """Every verbose name of our models and fields, and our apps' names, in English, that has a
    different Russian translation."""
    names = set()
    with translation.override("en"):
        items = []
        for model in apps.get_models():
            if model._meta.app_label not in OUR_APPS:
                continue
            items += [model._meta.verbose_name, model._meta.verbose_name_plural]
            items += [f.verbose_name for f in model._meta.get_fields() if f.concrete and not f.auto_created]
        items += [apps.get_app_config(label).verbose_name for label in OUR_APPS]
        english = [str(item) for item in items]
    with translation.override("ru"):
        russian = [str(item) for item in items]
    for en, ru in zip(english, russian, strict=True):
        if en != ru and en.lower() not in SAME_IN_BOTH:
            names.add(en.lower())
    return names


class LabelText(HTMLParser):
    """The text a person reads as names: the page heading, column headers, labels, filter titles,
    actions, help texts, buttons and messages; not data (cells, object names, select choices)."""

    WATCH = {"h1", "h3", "th", "label", "option", "caption", "summary"}
    WATCH_CLASSES = {"help", "messagelist", "submit-row", "object-tools"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in {"br", "img", "input", "meta", "link", "hr", "col"}:
            return
        css = dict(attrs).get("class") or ""
        watched = tag in self.WATCH or any(c in css.split() for c in self.WATCH_CLASSES)
        if tag == "tbody":
            self._in_body = True
        # A result row's header cell is data (the object's name), not a column name.
        if tag == "th" and self._in_body:
            watched = False
        # A select's options are data (choices of users, tokens …) except the action menu.
        if tag == "option" and self.stack and not self._in_actions:
            watched = False
        self.stack.append(watched or (bool(self.stack) and self.stack[-1]))
        if tag == "select":
            self._in_actions = dict(attrs).get("name") == "action"

    _in_actions = False
    _in_body = False

    def handle_endtag(self, tag):
        if tag in {"br", "img", "input", "meta", "link", "hr", "col"}:
            return
        if self.stack:
            self.stack.pop()
        if tag == "select":
            self._in_actions = False
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self.stack and self.stack[-1] and data.strip():
            self.texts.append(data.strip())


def label_text(html: str) -> str:
    parser = LabelText()
    parser.feed(html)
    return "\n".join(parser.texts)


def english_found(text: str, names: set[str]) -> list[str]:
    lowered = text.lower()
    return sorted(name for name in names if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", lowered))


@pytest.fixture
def seeded():
    customer = UserFactory(username="olga", language="ru")
    referred = UserFactory(username="ivan", referred_by=customer)
    _history(customer)
    from payments.deposits import deposit_mock

    deposit_mock(user=referred, amount=Decimal("100"))  # a referral bonus for olga
    token = AccessToken.objects.filter(user=customer).first()
    now = timezone.now()
    ProxySession.objects.create(
        key=secrets.token_hex(8),
        token=token,
        user=customer,
        device_id="laptop-1",
        started_at=now - timedelta(hours=1),
        last_seen=now,
        request_count=3,
    )
    notification_create(user=customer, kind="balance_low", context={"balance": "1.00", "threshold": "10.00"})
    call_command("install_schedule", verbosity=0)
    return customer


@pytest.fixture
def russian_admin():
    boss = User.objects.create_superuser(
        username="boss", email="boss@example.com", password="x-Pass-12345", language="ru"
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the saved preference wins over the browser
    client.force_login(boss)
    return client


def test_every_admin_page_in_russian_names_no_english_model_or_field(seeded, russian_admin):
    names = english_names()
    assert {"transaction", "balance after", "access token", "referral bonuses"} <= names
    pages = ["/admin/", reverse("analytics-dashboard")]
    probe = type("Probe", (), {"user": User.objects.get(username="boss")})()
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(probe):
            pages.append(reverse("admin:{}_{}_add".format(*info)))
        first = model.objects.first()
        if first is not None:
            pages.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    problems = {}
    checked = 0
    for url in pages:
        response = russian_admin.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert '<html lang="ru"' in html, url
        text = label_text(html)
        assert "Django" not in text, (url, "branding")
        found = [name for name in english_found(text, names) if (url, name) not in UNTRANSLATABLE]
        if found:
            problems[url] = found
        checked += 1
    assert checked >= 40
    assert not problems, problems


def test_admin_is_branded_zenzefi(russian_admin):
    page = russian_admin.get("/admin/").content.decode()
    assert "<title>Zenzefi | Zenzefi</title>" in page or "Zenzefi" in page.split("</title>")[0]
    assert "Администрирование Django" not in page and "Django administration" not in page
    assert 'id="site-name"><a href="/admin/">Zenzefi</a>' in page


def test_user_changelist_title_and_buttons_are_russian(russian_admin, seeded):
    page = russian_admin.get("/admin/accounts/user/").content.decode()
    assert "Выберите пользователь для изменения" in page and "Добавить пользователь" in page
    assert "Выберите user" not in page and "Добавить user" not in page


@pytest.mark.parametrize(
    "every,period,ru,en",
    [
        (5, "minutes", "каждые 5 минут", "every 5 minutes"),
        (12, "hours", "каждые 12 часов", "every 12 hours"),
        (2, "hours", "каждые 2 часа", "every 2 hours"),
        (21, "minutes", "каждую 21 минуту", "every 21 minutes"),
        (1, "days", "каждый день", "every day"),
        (30, "seconds", "каждые 30 секунд", "every 30 seconds"),
    ],
)
def test_beat_intervals_have_correct_plurals(every, period, ru, en):
    from django_celery_beat.models import IntervalSchedule

    with translation.override("ru"):
        assert interval_label(every, period) == ru
        assert str(IntervalSchedule(every=every, period=period)) == ru
    with translation.override("en"):
        assert str(IntervalSchedule(every=every, period=period)) == en


def test_periodic_task_list_shows_russian_intervals(russian_admin, seeded):
    page = russian_admin.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "каждые 30 секунд" in page
    for broken in ("каждые 5 минуты", "каждые 12 часы", "каждые 30 секунды", "every "):
        assert broken not in page
