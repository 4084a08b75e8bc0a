"""Languages: the saved preference, then the switcher's cookie, then Accept-Language, then Russian
for pages; Accept-Language or English for the REST API. Locale formatting of amounts and dates."""

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import UserFactory, fund

pytestmark = pytest.mark.django_db

RU, EN = {"HTTP_ACCEPT_LANGUAGE": "ru"}, {"HTTP_ACCEPT_LANGUAGE": "en"}


def text(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize(
    "headers,expected,absent",
    [
        (RU, "Цены токенов", "Token prices"),
        (EN, "Token prices", "Цены токенов"),
        ({"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}, "Token prices", "Цены токенов"),
        ({"HTTP_ACCEPT_LANGUAGE": "de-DE,ru;q=0.8,en;q=0.5"}, "Цены токенов", "Token prices"),
        ({}, "Цены токенов", "Token prices"),  # no header: Russian
        ({"HTTP_ACCEPT_LANGUAGE": "de"}, "Цены токенов", "Token prices"),  # unsupported: Russian
    ],
)
def test_landing_language_from_accept_language(headers, expected, absent):
    response = Client(**headers).get("/")
    assert expected in text(response) and absent not in text(response)
    assert response["Content-Language"] == ("en" if expected == "Token prices" else "ru")
    assert "Accept-Language" in response["Vary"]


@pytest.mark.parametrize(
    "path,ru,en",
    [
        ("/accounts/signup/", "Создайте аккаунт", "Create your account"),
        ("/accounts/login/", "Забыли пароль?", "Forgot your password?"),
        ("/accounts/password-reset/", "Сброс пароля", "Reset your password"),
        ("/account/", "Баланс", "Balance"),
        ("/account/tokens/", "Мои токены", "My tokens"),
        ("/account/tokens/buy/", "24 часа — 18,00 ZNC", "24 hours — 18.00 ZNC"),
        ("/account/bundles/", "5 токенов на 24 часа", "5 tokens of 24 hours"),
        ("/account/topup/", "Пополнить баланс", "Top up your balance"),
        ("/account/transactions/", "История операций", "Transaction history"),
        ("/account/referrals/", "Ссылка-приглашение", "Share link"),
        ("/account/profile/", "Сменить пароль", "Change password"),
        ("/account/notifications/", "Присылать письмо, когда", "Email me when"),
        ("/account/auto-renewal/", "Оставлять на балансе не меньше (ZNC)", "Keep at least (ZNC)"),
        ("/account/gifts/", "Активировать подарочный код", "Redeem a gift code"),
        ("/account/webhooks/", "Проверка подписи", "Verifying signatures"),
    ],
)
def test_every_page_in_both_languages(path, ru, en):
    anonymous = path.startswith("/accounts/")
    for language, expected, other in (("ru", ru, en), ("en", en, ru)):
        client = Client(HTTP_ACCEPT_LANGUAGE=language)
        if not anonymous:
            client.force_login(UserFactory(language=language))
        body = text(client.get(path))
        assert expected in body and other not in body, (path, language)
        assert f'<html lang="{language}">' in body


def test_saved_language_wins_over_accept_language():
    english = UserFactory(language="en")
    client = Client(**RU)
    client.force_login(english)
    assert "Balance" in text(client.get("/account/"))
    russian = UserFactory(language="ru")
    client = Client(**EN)
    client.force_login(russian)
    assert "Баланс" in text(client.get("/account/"))
    client.logout()
    assert "Token prices" in text(client.get("/"))  # signed out: Accept-Language again


def test_saved_language_wins_over_the_cookie():
    client = Client(**RU)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ru"
    client.force_login(UserFactory(language="en"))
    assert "Balance" in text(client.get("/account/"))


def test_switcher_sets_the_cookie_for_anonymous_visitors():
    client = Client(**RU)
    body = text(client.get("/"))
    assert re.search(r'<form method="post" action="/i18n/setlang/"', body)
    assert 'name="language" value="en"' in body and 'name="next" value="/"' in body
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert "Forgot your password?" in text(client.get("/accounts/login/"))  # cookie beats the header


def test_switcher_saves_the_preference_of_a_signed_in_user():
    user = UserFactory(language="ru")
    client = Client(**RU)
    client.force_login(user)
    client.post("/i18n/setlang/", {"language": "en", "next": "/account/"})
    user.refresh_from_db()
    assert user.language == "en"
    client.cookies.pop(settings.LANGUAGE_COOKIE_NAME)
    assert "Balance" in text(client.get("/account/"))


def test_switcher_ignores_unknown_languages_and_get():
    user = UserFactory(language="ru")
    client = Client()
    client.force_login(user)
    assert client.get("/i18n/setlang/").status_code == 405
    client.post("/i18n/setlang/", {"language": "de", "next": "/"})
    user.refresh_from_db()
    assert user.language == "ru"


def test_signup_in_russian_saves_russian_and_shows_russian_errors():
    client = Client(**RU)
    bad = client.post(
        "/accounts/signup/",
        {"email": "", "username": "ivan", "referral_code": "NOPE"},
        REMOTE_ADDR="10.5.0.1",
    )
    body = text(bad)
    assert "Обязательное поле." in body and "Неизвестный реферальный код." in body
    good = {
        "email": "ivan@example.com",
        "username": "ivan",
        "password1": "Zenzefi-2026-strong",
        "password2": "Zenzefi-2026-strong",
    }
    response = client.post("/accounts/signup/", good, REMOTE_ADDR="10.5.0.1")
    assert response.status_code == 302
    assert User.objects.get(username="ivan").language == "ru"
    assert "Добро пожаловать, ivan!" in text(client.get("/account/"))


def test_amounts_and_dates_are_formatted_for_the_locale():
    ru_user, en_user = UserFactory(language="ru"), UserFactory(language="en")
    for user in (ru_user, en_user):
        fund(user, "1234.5")
    ru_client, en_client = Client(), Client()
    ru_client.force_login(ru_user)
    en_client.force_login(en_user)
    ru_body, en_body = text(ru_client.get("/account/")), text(en_client.get("/account/"))
    assert '<span data-testid="balance">1\xa0234,50</span>' in ru_body
    assert '<span data-testid="balance">1,234.50</span>' in en_body
    ru_profile, en_profile = (
        text(ru_client.get("/account/profile/")),
        text(en_client.get("/account/profile/")),
    )
    assert re.search(
        r"\d{1,2} (января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря) \d{4}",
        ru_profile,
    )
    assert re.search(r"<dd>\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}</dd>", en_profile)


def test_password_reset_email_in_the_page_language(mailoutbox):
    user = UserFactory()
    Client(**RU).post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.5.0.2")
    assert mailoutbox[0].subject == "Zenzefi: сброс пароля"
    assert "Здравствуйте" in mailoutbox[0].body


# --- REST API ----------------------------------------------------------------------------


def test_api_errors_are_english_without_accept_language():
    response = APIClient().get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert response["Content-Language"] == "en"


def test_api_errors_follow_accept_language():
    response = APIClient().get("/api/v1/users/me", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.json()["detail"] == "Учетные данные не были предоставлены."
    unsupported = APIClient().get("/api/v1/users/me", HTTP_ACCEPT_LANGUAGE="de")
    assert unsupported.json()["detail"] == "Authentication credentials were not provided."


def test_api_ignores_the_page_preferences():
    """A Russian-speaking user's session and language cookie do not change API answers."""
    user = UserFactory(language="ru")
    client = APIClient()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ru"
    response = client.post("/api/v1/tokens/purchase", {"duration_hours": "abc"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["duration_hours"] == ["A valid integer is required."]


def test_the_session_user_is_loaded_once_per_request():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(UserFactory(language="en"))
    with CaptureQueriesContext(connection) as queries:
        assert "Your details" in text(client.get("/account/profile/"))
    user_loads = [q["sql"] for q in queries.captured_queries if 'FROM "accounts_user"' in q["sql"]]
    assert len(user_loads) == 1, user_loads


# --- The catalogs --------------------------------------------------------------------------


def test_one_catalog_per_language():
    """locale/ is the only source of translations: no app keeps a catalog of its own."""
    base = Path(settings.BASE_DIR)
    assert [Path(path) for path in settings.LOCALE_PATHS] == [base / "locale"]
    app_catalogs = sorted(
        str(path.relative_to(base))
        for path in base.glob("*/locale")
        if path.parts[-2] not in {"locale", ".venv", "venv", "var", "staticfiles"}
    )
    assert app_catalogs == []


@pytest.mark.parametrize("language", ["ru", "en"])
def test_catalog_is_complete_and_compiled(language, tmp_path):
    """Every message translated, none fuzzy (Django ignores fuzzy ones), and the committed .mo is
    what the .po compiles to."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("needs gettext's msgfmt")
    folder = Path(settings.BASE_DIR) / "locale" / language / "LC_MESSAGES"
    compiled = tmp_path / "django.mo"
    result = subprocess.run(
        [msgfmt, "--check", "--statistics", "-o", str(compiled), str(folder / "django.po")],
        capture_output=True,
        text=True,
        check=False,
        env={"LC_ALL": "C"},
    )
    assert result.returncode == 0, result.stderr
    assert "translated messages" in result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    with compiled.open("rb") as fresh, (folder / "django.mo").open("rb") as committed:
        fresh_catalog = gettext.GNUTranslations(fresh)._catalog
        committed_catalog = gettext.GNUTranslations(committed)._catalog
    assert committed_catalog == fresh_catalog, "run compilemessages after changing the .po"


def test_russian_plurals_have_three_forms():
    from django.utils import translation

    with translation.override("ru"):
        forms = [
            translation.ngettext("%(count)d hour", "%(count)d hours", n) % {"count": n}
            for n in (1, 2, 5, 11, 21, 22, 25)
        ]
    assert forms == ["1 час", "2 часа", "5 часов", "11 часов", "21 час", "22 часа", "25 часов"]
