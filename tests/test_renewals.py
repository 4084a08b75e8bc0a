"""Auto-renewal: the per-token switch (API and page), the minimum-balance preference, and the job
that renews tokens expiring within the hour once per period, or says clearly why it cannot."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from monitoring.schedule import SCHEDULE
from notifications.models import Notification, NotificationKind
from renewals.models import TokenRenewal
from renewals.services import token_renew, tokens_renew_due
from tests.concurrency import run_threads
from tests.factories import DEFAULT_PASSWORD, UserFactory, fund
from tests.test_ledger import assert_ledger_consistent
from tokens import services as token_services
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db


def expiring_token(user, *, hours=24, left=timedelta(minutes=30), auto_renew=True, balance="100"):
    if balance:
        fund(user, balance)
    issued = token_services.token_purchase(user=user, duration_hours=hours, auto_renew=auto_renew)
    started = timezone.now() - timedelta(hours=hours) + left
    return token_services.token_activate(token=issued.token, now=started)


def purchases(user):
    return Transaction.objects.filter(user=user, type=TransactionType.PURCHASE)


# --- the job ----------------------------------------------------------------------------------------


def test_renews_with_enough_balance(user, django_capture_on_commit_callbacks, settings):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_endpoint_create(user=user, url="http://127.0.0.1:9/hook", events=["token.renewed"])
    token = expiring_token(user)  # 100 − 18 = 82 left
    old_expiry = token.expires_at
    with django_capture_on_commit_callbacks(execute=True):
        run = tokens_renew_due()
    assert run.renewed == [token.pk]
    token.refresh_from_db()
    assert token.expires_at == old_expiry + timedelta(hours=24)
    assert token.cost == Decimal("36.00")  # what was paid in total for this token
    renewal = TokenRenewal.objects.get(token=token)
    assert renewal.period_end == old_expiry and renewal.price == Decimal("18.00")
    assert renewal.transaction.amount == Decimal("-18.00")
    assert renewal.transaction.reference == f"token:{token.pk}"
    user.refresh_from_db()
    assert user.balance == Decimal("64.00")
    assert_ledger_consistent(user)
    assert AuditLog.objects.filter(action="token.renew", resource_id=str(token.pk)).count() == 1
    assert Notification.objects.filter(user=user, kind=NotificationKind.AUTO_RENEW_DONE).count() == 1
    delivery = WebhookDelivery.objects.get(event="token.renewed")
    assert delivery.payload["data"]["token_id"] == token.pk


def test_run_twice_renews_once(user):
    token = expiring_token(user)
    now = timezone.now()
    first = tokens_renew_due(now=now)
    second = tokens_renew_due(now=now)
    assert first.renewed == [token.pk] and second.renewed == []
    assert token_renew(token_id=token.pk, now=now) == "skipped"  # now outside the window
    assert TokenRenewal.objects.count() == 1
    assert purchases(user).count() == 2  # the purchase and one renewal
    assert_ledger_consistent(user)


def test_next_period_renews_again(user):
    token = expiring_token(user, balance="100")
    tokens_renew_due()
    token.refresh_from_db()
    later = token.expires_at - timedelta(minutes=20)
    assert tokens_renew_due(now=later).renewed == [token.pk]
    assert TokenRenewal.objects.filter(token=token).count() == 2
    user.refresh_from_db()
    assert user.balance == Decimal("46.00")


def test_not_enough_balance_notifies_once_and_charges_nothing(user):
    token = expiring_token(user, balance="30")  # 12 left after the purchase, renewal costs 18
    old_expiry = token.expires_at
    for _ in range(3):
        run = tokens_renew_due()
        assert run.failed == [token.pk] and run.renewed == []
    token.refresh_from_db()
    assert token.expires_at == old_expiry
    assert purchases(user).count() == 1
    note = Notification.objects.get(user=user, kind=NotificationKind.AUTO_RENEW_FAILED)
    assert note.context["reason"] == "insufficient_balance"
    assert note.context["price"] == "18.00" and note.context["balance"] == "12.00"
    assert AuditLog.objects.filter(action="token.renew_failed").count() == 1
    assert not TokenRenewal.objects.exists()
    # Topped up in time: the next run renews.
    fund(user, "10")
    assert tokens_renew_due().renewed == [token.pk]


def test_minimum_balance_to_keep_is_respected(user):
    token = expiring_token(user, balance="48")  # 30 left; renewal 18 → 12 would remain
    user.auto_renew_min_balance = Decimal("12.01")
    user.save(update_fields=["auto_renew_min_balance"])
    assert tokens_renew_due().failed == [token.pk]
    note = Notification.objects.get(kind=NotificationKind.AUTO_RENEW_FAILED)
    assert note.context["min_balance"] == "12.01"
    user.auto_renew_min_balance = Decimal("12.00")
    user.save(update_fields=["auto_renew_min_balance"])
    assert tokens_renew_due().renewed == [token.pk]
    user.refresh_from_db()
    assert user.balance == Decimal("12.00")


def test_only_due_auto_renew_tokens_are_renewed(user):
    fund(user, "500")
    far = expiring_token(user, left=timedelta(hours=2), balance=None)
    off = expiring_token(user, auto_renew=False, balance=None)
    revoked = expiring_token(user, balance=None)
    token_services.token_revoke(token_id=revoked.pk, actor=user)
    never_used = token_services.token_purchase(user=user, duration_hours=1, auto_renew=True).token
    expired = expiring_token(user, left=timedelta(minutes=-5), balance=None)
    run = tokens_renew_due()
    assert run.renewed == [] and run.failed == []
    assert not TokenRenewal.objects.exists()
    for token in (far, off, revoked, never_used, expired):
        token.refresh_from_db()
    assert never_used.expires_at is None


def test_price_is_the_current_price(user, settings):
    token = expiring_token(user, hours=1, balance="10")
    settings.TOKEN_PRICES = {**settings.TOKEN_PRICES, 1: Decimal("2.50")}
    tokens_renew_due()
    assert TokenRenewal.objects.get(token=token).price == Decimal("2.50")


def test_refund_after_renewal_never_exceeds_what_was_paid(user):
    token = expiring_token(user, hours=24, left=timedelta(minutes=30))
    tokens_renew_due()
    token = token_services.token_revoke(token_id=token.pk, actor=user, owner=user)
    # Paid 36 for 48 h, used 23.5 h: the refund is for the 24.5 h left (rounded down).
    assert Decimal("18.00") < token.refund_amount <= Decimal("18.38")
    assert_ledger_consistent(user)


def test_schedule_runs_it_every_five_minutes():
    entry = next(e for e in SCHEDULE if e.task == "renewals.tasks.renew_expiring_tokens")
    assert (entry.every, entry.period) == (5, "minutes")


def test_task_entry_point(user):
    from renewals.tasks import renew_expiring_tokens

    expiring_token(user)
    assert renew_expiring_tokens() == 1
    assert renew_expiring_tokens() == 0


# --- the switch and the preference ------------------------------------------------------------------


def test_patch_token_auto_renew(auth_client, user):
    fund(user, "50")
    token = token_services.token_purchase(user=user, duration_hours=24).token
    response = auth_client.patch(f"/api/v1/tokens/{token.pk}", {"auto_renew": True}, format="json")
    assert response.status_code == 200 and response.json()["auto_renew"] is True
    token.refresh_from_db()
    assert token.auto_renew is True
    assert AuditLog.objects.get(action="token.auto_renew").details["auto_renew"] is True
    assert (
        auth_client.patch(f"/api/v1/tokens/{token.pk}", {"auto_renew": False}, format="json").json()[
            "auto_renew"
        ]
        is False
    )
    assert auth_client.patch(f"/api/v1/tokens/{token.pk}", {}, format="json").status_code == 400
    assert (
        auth_client.patch(f"/api/v1/tokens/{token.pk}", {"auto_renew": "maybe"}, format="json").status_code
        == 400
    )


def test_patch_someone_elses_or_revoked_token(auth_client, user):
    other = UserFactory()
    fund(other, "50")
    foreign = token_services.token_purchase(user=other, duration_hours=24).token
    assert (
        auth_client.patch(f"/api/v1/tokens/{foreign.pk}", {"auto_renew": True}, format="json").status_code
        == 404
    )
    fund(user, "50")
    mine = token_services.token_purchase(user=user, duration_hours=24).token
    token_services.token_revoke(token_id=mine.pk, actor=user)
    response = auth_client.patch(f"/api/v1/tokens/{mine.pk}", {"auto_renew": True}, format="json")
    assert response.status_code == 409
    foreign.refresh_from_db()
    assert foreign.auto_renew is False


def test_min_balance_preference_api(auth_client, user):
    url = "/api/v1/users/me/auto-renewal"
    assert auth_client.get(url).json() == {"auto_renew_min_balance": "0.00"}
    assert auth_client.patch(url, {"auto_renew_min_balance": "25.50"}, format="json").status_code == 200
    user.refresh_from_db()
    assert user.auto_renew_min_balance == Decimal("25.50")
    assert auth_client.patch(url, {"auto_renew_min_balance": "-1"}, format="json").status_code == 400
    assert auth_client.patch(url, {"auto_renew_min_balance": "1.001"}, format="json").status_code == 400
    user.refresh_from_db()
    assert user.auto_renew_min_balance == Decimal("25.50")


def test_pages_toggle_and_preference(user):
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    fund(user, "50")
    token = token_services.token_purchase(user=user, duration_hours=24).token
    listing = client.get(reverse("tokens:list")).content.decode()
    assert reverse("renewals:toggle", args=[token.pk]) in listing
    client.post(reverse("renewals:toggle", args=[token.pk]), {"auto_renew": "on"})
    token.refresh_from_db()
    assert token.auto_renew is True
    client.post(reverse("renewals:toggle", args=[token.pk]))
    token.refresh_from_db()
    assert token.auto_renew is False
    assert client.get(reverse("renewals:preferences")).status_code == 200
    response = client.post(reverse("renewals:preferences"), {"auto_renew_min_balance": "7.25"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.auto_renew_min_balance == Decimal("7.25")


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_job_runs_renew_once(requires_postgres):
    user = UserFactory()
    token = expiring_token(user, balance="100")
    now = timezone.now()
    results = run_threads(5, lambda: token_renew(token_id=token.pk, now=now))
    assert results.count("renewed") == 1, results
    assert set(results) <= {"renewed", "skipped", "already"}
    assert TokenRenewal.objects.count() == 1
    assert purchases(user).count() == 2
    assert_ledger_consistent(user)
    assert AccessToken.objects.get(pk=token.pk).cost == Decimal("36.00")
