"""Referral bonus (SPEC §6): 10 % of a referred user's first top-up larger than 100 ZNC, exactly
once per referred user, through every deposit path, and the referrals API."""

from decimal import Decimal

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from notifications.models import Notification, NotificationKind
from payments.deposits import deposit_mock
from referrals.models import ReferralBonus
from referrals.services import referral_bonus_amount
from staff.services import user_admin_update
from tests.concurrency import run_concurrently
from tests.factories import UserFactory, fund
from tests.payments_support import pay, start_payment
from tests.test_ledger import assert_ledger_consistent

pytestmark = pytest.mark.django_db

REFERRALS = "/api/v1/users/me/referrals"


@pytest.fixture
def referrer(db):
    return UserFactory()


@pytest.fixture
def referred(referrer):
    return UserFactory(referred_by=referrer)


def bonuses(referrer):
    return Transaction.objects.filter(user=referrer, type=TransactionType.REFERRAL_BONUS)


@pytest.mark.parametrize(
    "amount,bonus",
    [
        ("100.00", None),  # not larger than 100: no bonus
        ("100.01", "10.00"),  # 10.001 → 10.00
        ("100.05", "10.01"),  # 10.005 → 10.01 (half-up)
        ("105.05", "10.51"),  # 10.505 → 10.51
        ("1000", "100.00"),
        ("100000", "10000.00"),
    ],
)
def test_bonus_boundaries_and_rounding(referrer, referred, amount, bonus):
    deposit_mock(user=referred, amount=Decimal(amount))
    referrer.refresh_from_db()
    if bonus is None:
        assert not bonuses(referrer).exists() and not ReferralBonus.objects.exists()
        assert referrer.balance == Decimal("0.00") and referrer.referral_bonus_earned == Decimal("0.00")
    else:
        row = bonuses(referrer).get()
        assert row.amount == Decimal(bonus) and row.reference == f"referral:{referred.pk}"
        assert referrer.balance == Decimal(bonus) == referrer.referral_bonus_earned
        record = ReferralBonus.objects.get(referred=referred)
        assert record.amount == Decimal(bonus) and record.deposit_amount == Decimal(amount)
    assert_ledger_consistent(referrer)
    assert_ledger_consistent(referred)


def test_small_top_ups_before_do_not_use_the_bonus_up(referrer, referred):
    deposit_mock(user=referred, amount=Decimal("50"))
    deposit_mock(user=referred, amount=Decimal("100"))
    assert not bonuses(referrer).exists()
    deposit_mock(user=referred, amount=Decimal("150"))
    assert bonuses(referrer).get().amount == Decimal("15.00")


def test_second_qualifying_deposit_pays_no_second_bonus(referrer, referred):
    deposit_mock(user=referred, amount=Decimal("200"))
    deposit_mock(user=referred, amount=Decimal("500"))
    assert bonuses(referrer).count() == 1
    referrer.refresh_from_db()
    assert referrer.referral_bonus_earned == Decimal("20.00")
    assert AuditLog.objects.filter(action="referral.bonus").count() == 1


def test_bonus_through_a_payment_callback(api_client, referrer, referred):
    payment = start_payment(referred, "300")
    for _ in range(3):
        assert pay(api_client, payment.provider_payment_id).status_code == 200
    assert bonuses(referrer).get().amount == Decimal("30.00")
    assert_ledger_consistent(referrer)
    assert_ledger_consistent(referred)


def test_staff_adjustments_and_other_credits_never_count(referrer, referred):
    staff = UserFactory(is_staff=True)
    user_admin_update(
        user_id=referred.pk, actor=staff, adjustment_amount=Decimal("500"), adjustment_reason="goodwill"
    )
    fund(referred, "500")  # a raw ledger DEPOSIT outside the top-up path (test helper)
    assert not bonuses(referrer).exists()
    deposit_mock(user=referred, amount=Decimal("101"))
    assert bonuses(referrer).get().amount == Decimal("10.10")


def test_users_without_a_referrer_pay_nobody(user):
    deposit_mock(user=user, amount=Decimal("500"))
    assert not Transaction.objects.filter(type=TransactionType.REFERRAL_BONUS).exists()


def test_bonus_notifies_after_commit(referrer, referred, django_capture_on_commit_callbacks, settings):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_endpoint_create(user=referrer, url="http://127.0.0.1:9/hook", events=["referral.bonus"])
    with django_capture_on_commit_callbacks(execute=True):
        deposit_mock(user=referred, amount=Decimal("250"))
    note = Notification.objects.get(user=referrer, kind=NotificationKind.REFERRAL_BONUS)
    assert note.context["bonus"] == "25.00" and note.context["referred_username"] == referred.username
    delivery = WebhookDelivery.objects.get(event="referral.bonus")
    assert delivery.payload["data"]["bonus"] == "25.00"


@override_settings(REFERRAL_BONUS_PERCENT=Decimal("5"), REFERRAL_MIN_TOPUP=Decimal("10"))
def test_rule_comes_from_settings(referrer, referred):
    assert referral_bonus_amount(Decimal("33.30")) == Decimal("1.67")  # 1.665 → 1.67
    deposit_mock(user=referred, amount=Decimal("10.01"))
    assert bonuses(referrer).get().amount == Decimal("0.50")


# --- the API --------------------------------------------------------------------------------------


def test_referrals_endpoint(referrer, settings):
    settings.BACKEND_URL = "https://zz.example"
    qualified = UserFactory(referred_by=referrer, username="alice")
    UserFactory(referred_by=referrer, username="bob")
    UserFactory()  # someone else's
    deposit_mock(user=qualified, amount=Decimal("120"))
    client = APIClient()
    client.force_authenticate(referrer)
    body = client.get(REFERRALS).json()
    assert body["referral_code"] == referrer.referral_code
    assert body["referral_link"] == f"https://zz.example/accounts/signup/?ref={referrer.referral_code}"
    assert body["total_referrals"] == 2 and body["qualifying_referrals"] == 1
    assert body["total_bonus_earned"] == "12.00"
    by_name = {row["username"]: row for row in body["referred_users"]}
    assert set(by_name) == {"alice", "bob"}
    assert by_name["alice"]["qualified"] is True and by_name["bob"]["qualified"] is False
    assert by_name["alice"]["joined_at"]


def test_referrals_endpoint_needs_auth(api_client):
    assert api_client.get(REFERRALS).status_code == 401


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_deposits_pay_one_bonus(requires_postgres):
    referrer = UserFactory()
    referred = UserFactory(referred_by=referrer)
    amounts = ["150", "200", "250", "300", "50", "120"]
    results = run_concurrently([lambda a=a: deposit_mock(user=referred, amount=Decimal(a)) for a in amounts])
    assert all(isinstance(r, Transaction) for r in results), results
    assert bonuses(referrer).count() == 1 and ReferralBonus.objects.count() == 1
    record = ReferralBonus.objects.get()
    assert record.amount == referral_bonus_amount(record.deposit_amount)
    assert record.deposit_amount > Decimal("100")
    referrer.refresh_from_db()
    assert referrer.referral_bonus_earned == record.amount
    assert_ledger_consistent(referrer)
    assert_ledger_consistent(referred)


@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_and_referrer_activity_pay_one_bonus(requires_postgres):
    """Callbacks of two payments of the referred user race with the referrer's own deposits
    (users locked in id order: no deadlock, one bonus)."""
    referrer = UserFactory()
    referred = UserFactory(referred_by=referrer)
    first, second = start_payment(referred, "180"), start_payment(referred, "400")
    fns = [
        lambda: pay(APIClient(), first.provider_payment_id).status_code,
        lambda: pay(APIClient(), second.provider_payment_id).status_code,
        lambda: pay(APIClient(), first.provider_payment_id).status_code,
        lambda: pay(APIClient(), second.provider_payment_id).status_code,
        lambda: deposit_mock(user=referrer, amount=Decimal("10")) and 200,
        lambda: deposit_mock(user=referrer, amount=Decimal("20")) and 200,
    ]
    assert run_concurrently(fns) == [200] * 6
    assert bonuses(referrer).count() == 1
    assert Transaction.objects.filter(user=referred, type=TransactionType.DEPOSIT).count() == 2
    assert_ledger_consistent(referrer)
    assert_ledger_consistent(referred)
