"""One date format per language on the customer pages (issue 13): English "1 Dec 2026, 13:31 UTC",
Russian "1 декабря 2026, 13:31 UTC" (zenzefi/formats/), never "12/01/2026 1:31 p.m." beside
"Dec. 1, 2026"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from tests.factories import UserFactory, fund
from tokens.services import token_purchase

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 12, 1, 13, 31, tzinfo=UTC)
EXPECTED = {
    "en": ("1 Dec 2026, 13:31 UTC", "1 Dec 2026"),
    "ru": ("1 декабря 2026, 13:31 UTC", "1 декабря 2026"),
}


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_named_format_gives_the_one_form_of_the_language(language):
    template = Template(
        '{{ d|date:"DATETIME_FORMAT" }}|{{ d|date:"SHORT_DATETIME_FORMAT" }}|{{ d }}|'
        '{{ d|date:"DATE_FORMAT" }}|{{ d|date:"SHORT_DATE_FORMAT" }}|{{ d|date }}'
    )
    with translation.override(language):
        parts = template.render(Context({"d": MOMENT})).split("|")
    moment, day = EXPECTED[language]
    assert parts == [moment, moment, moment, day, day, day]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_pages_show_dates_in_that_form(language):
    user = UserFactory(language=language)
    fund(user, "50")
    with time_machine.travel(MOMENT, tick=False):
        token_purchase(user=user, duration_hours=24, scope="full")
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    moment, _ = EXPECTED[language]
    for path in ("/account/tokens/", "/account/transactions/"):
        body = client.get(path).content.decode()
        assert moment in body, path
        assert "p.m." not in body and "12/01/2026" not in body and "Dec. 1" not in body


@pytest.mark.parametrize(
    "language,period,expected",
    [
        ("en", "day", "One bar per hour, from 30 Nov 2026, 13:00 UTC to 1 Dec 2026, 13:31 UTC."),
        ("en", "week", "One bar per day (UTC), from 24 Nov 2026 to 1 Dec 2026."),
        ("ru", "day", "Один столбец — один час, с 30 ноября 2026, 13:00 UTC по 1 декабря 2026, 13:31 UTC."),
    ],
)
def test_usage_chart_axis_names_dates_and_zone(language, period, expected):
    user = UserFactory(language=language)
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    with time_machine.travel(MOMENT, tick=False):
        response = client.get("/account/", {"period": period})
    body = response.content.decode()
    assert expected in body
    first = response.context["requests_chart"].first_label
    assert first == expected.split("from ")[-1].split(" to")[0] or language == "ru"
