"""REST API rate limits by tier (SPEC §9): free / premium / enterprise, anonymous per IP,
superusers bypass, 429 with Retry-After in the error shape, hits audited and counted, repeat
offenders banned; and the per-IP limit of password reset."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from accounts.throttling import rate_limit_bans, tier_limit
from audit.models import AuditLog
from staff.services import user_admin_update
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/currency/balance"
PUBLIC = "/api/v1/bundles/"
# The start of a minute, so a test's requests never straddle two windows.
T0 = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.API_RATE_LIMIT_FREE = 3
    settings.API_RATE_LIMIT_PREMIUM = 5
    settings.API_RATE_LIMIT_ENTERPRISE = 0
    settings.API_RATE_LIMIT_BAN_AFTER = 3
    settings.API_RATE_LIMIT_BAN_SECONDS = 300


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def hits(scope="api") -> float:
    return REGISTRY.get_sample_value("rate_limit_hits_total", {"scope": scope}) or 0.0


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def allowed(client, url=BALANCE, n=1, **extra) -> list[int]:
    return [client.get(url, **extra).status_code for _ in range(n)]


def test_spec_defaults():
    assert django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "accounts.throttling.TierRateThrottle"
    ]


def test_default_tier_limits_match_the_spec(settings):
    settings.API_RATE_LIMIT_FREE, settings.API_RATE_LIMIT_PREMIUM, settings.API_RATE_LIMIT_ENTERPRISE = (
        100,
        500,
        0,
    )
    assert (tier_limit("free"), tier_limit("premium"), tier_limit("enterprise")) == (100, 500, 0)
    assert tier_limit("bogus") == 100


def test_free_tier_limit_429_with_retry_after_and_audit(clock):
    user = UserFactory(tier="free")
    client = client_for(user)
    before = hits()
    assert allowed(client, n=3) == [200, 200, 200]
    response = client.get(BALANCE)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled" and response.json()["detail"]
    assert response["Retry-After"] == "55"  # 10:00:05 → the window ends at 10:01:00
    assert client.get(BALANCE).status_code == 429
    assert hits() - before == 2
    entry = AuditLog.objects.get(action="rate_limit.hit")  # once per key and window
    assert entry.actor == user and entry.details["tier"] == "free" and entry.details["limit"] == "3/min"
    # The next window starts afresh.
    clock.shift(timedelta(seconds=60))
    assert allowed(client) == [200]


def test_premium_tier_limit(clock):
    client = client_for(UserFactory(tier="premium"))
    assert allowed(client, n=5) == [200] * 5
    assert client.get(BALANCE).status_code == 429


def test_enterprise_is_unlimited(clock):
    client = client_for(UserFactory(tier="enterprise"))
    assert allowed(client, n=25) == [200] * 25
    assert not AuditLog.objects.filter(action="rate_limit.hit").exists()


def test_superusers_bypass(clock):
    client = client_for(UserFactory(is_superuser=True, is_staff=True, tier="free"))
    assert allowed(client, n=10) == [200] * 10


def test_users_are_counted_separately(clock):
    first, second = client_for(UserFactory()), client_for(UserFactory())
    assert allowed(first, n=4)[-1] == 429
    assert allowed(second, n=3) == [200] * 3


def test_anonymous_callers_are_limited_per_ip_at_the_free_rate(clock):
    client = APIClient()
    assert allowed(client, PUBLIC, n=3, REMOTE_ADDR="10.1.1.1") == [200] * 3
    blocked = client.get(PUBLIC, REMOTE_ADDR="10.1.1.1")
    assert blocked.status_code == 429 and "Retry-After" in blocked
    # X-Forwarded-For does not dodge it; another address is not affected.
    assert client.get(PUBLIC, REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 429
    assert allowed(client, PUBLIC, REMOTE_ADDR="10.1.1.2") == [200]
    assert AuditLog.objects.get(action="rate_limit.hit").ip == "10.1.1.1"


def test_staff_tier_change_applies_at_once(clock):
    user = UserFactory(tier="free")
    client = client_for(user)
    assert allowed(client, n=4)[-1] == 429
    staff = UserFactory(is_staff=True)
    user_admin_update(user_id=user.pk, actor=staff, tier="premium")
    user.refresh_from_db()
    client.force_authenticate(user)
    assert allowed(client, n=2) == [200, 429]  # 5 per minute now: the 5th request passes


def test_tier_is_editable_in_the_admin():
    from django.contrib.admin.sites import site

    from accounts.models import User

    admin = site._registry[User]
    fields = [f for _, opts in admin.fieldsets for f in opts["fields"]]
    assert "tier" in fields and "tier" not in admin.readonly_fields


def test_repeat_offender_is_banned_audited_and_listed(clock):
    user = UserFactory()
    client = client_for(user)
    for _ in range(3):  # over the limit in three consecutive windows
        assert allowed(client, n=4)[-1] == 429
        clock.shift(timedelta(seconds=60))
    ban = AuditLog.objects.get(action="rate_limit.ban")
    assert ban.suspicious and ban.actor == user and ban.resource_id == f"u{user.pk}"
    # A new window would allow requests, but the ban holds.
    response = client.get(BALANCE)
    assert response.status_code == 429 and 200 < int(response["Retry-After"]) <= 300
    assert [b["key"] for b in rate_limit_bans()] == [f"u{user.pk}"]
    clock.shift(timedelta(seconds=301))
    assert allowed(client) == [200]


def test_two_windows_over_are_not_a_ban(clock):
    client = client_for(UserFactory())
    for _ in range(2):
        allowed(client, n=4)
        clock.shift(timedelta(seconds=60))
    clock.shift(timedelta(seconds=60))  # a quiet window breaks the streak
    allowed(client, n=4)
    clock.shift(timedelta(seconds=60))
    assert allowed(client) == [200]
    assert not AuditLog.objects.filter(action="rate_limit.ban").exists()


# --- the per-IP auth limit extends to password reset -----------------------------------------------


def test_password_reset_is_limited_per_ip(mailoutbox):
    user = UserFactory()
    client = Client()
    url = "/accounts/password-reset/"
    for _ in range(5):
        response = client.post(url, {"email": user.email}, REMOTE_ADDR="10.8.8.8")
        assert response.status_code == 302
    sent = len(mailoutbox)
    blocked = client.post(url, {"email": user.email}, REMOTE_ADDR="10.8.8.8")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert len(mailoutbox) == sent  # nothing sent for the refused attempt
    entry = AuditLog.objects.get(action="rate_limit.hit", resource_id="auth.password_reset")
    assert entry.suspicious and entry.ip == "10.8.8.8"
    assert client.post(url, {"email": user.email}, REMOTE_ADDR="10.8.8.9").status_code == 302


def test_staff_see_the_bans_in_force_in_the_admin(clock):
    """Issue 15: the live bans (rate_limit_bans) on an admin page behind audit.view_auditlog, ru/en."""
    from tests.factories import staff_with

    offender = UserFactory()
    client = client_for(offender)
    for _ in range(3):
        assert allowed(client, n=4)[-1] == 429
        clock.shift(timedelta(seconds=60))
    assert [b["key"] for b in rate_limit_bans()] == [f"u{offender.pk}"]

    auditor, russian_auditor, other = Client(), Client(), Client()
    auditor.force_login(staff_with("audit.view_auditlog", language="en"))
    russian_auditor.force_login(staff_with("audit.view_auditlog", language="ru"))
    other.force_login(staff_with("accounts.view_user"))
    page = auditor.get("/admin/rate-limit-bans/")
    assert page.status_code == 200
    html = page.content.decode()
    until = datetime.fromtimestamp(rate_limit_bans()[0]["until"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"<td>u{offender.pk}</td>" in html and offender.username in html and until in html
    assert "Rate-limit bans" in html and "free" in html
    russian = russian_auditor.get("/admin/rate-limit-bans/").content.decode()
    assert "Блокировки за превышение лимита" in russian and "Заблокирован до (UTC)" in russian
    index = auditor.get("/admin/").content.decode()
    assert 'href="/admin/rate-limit-bans/"' in index
    # Without the permission: no link, and the page is refused.
    assert 'href="/admin/rate-limit-bans/"' not in other.get("/admin/").content.decode()
    assert other.get("/admin/rate-limit-bans/").status_code == 403
    # The ban over: the page says so.
    clock.shift(timedelta(seconds=301))
    empty = auditor.get("/admin/rate-limit-bans/").content.decode()
    # The key as its table cell: a bare "u1" can occur in the page's random CSRF token.
    assert "No bans in force." in empty and f"<td>u{offender.pk}</td>" not in empty
