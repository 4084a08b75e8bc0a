"""Notification preferences (SPEC §11, §14): the four `notify_*` switches on User turn their kind
of email off (the notification is still recorded and its webhook still fires), the page
/account/notifications/ and `GET/PATCH /api/v1/users/me`."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import User
from audit.models import AuditLog
from notifications import services
from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.tasks import notify_expiring_tokens, notify_low_balance, send_notification_email
from tests import jobs_support
from tests.factories import UserFactory, fund
from tokens import services as token_services

celery_eager = jobs_support.celery_eager
receiver = jobs_support.receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

PREFERENCES = ("notify_token_expiring", "notify_low_balance", "notify_renewal", "notify_payment")
PAGE = "/account/notifications/"
ME = "/api/v1/users/me"


@pytest.fixture(autouse=True)
def _locmem_email():
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        yield


def running_token(user, *, hours=24, started_ago=timedelta(0), auto_renew=False, balance="400"):
    fund(user, balance)
    issued = token_services.token_purchase(user=user, duration_hours=hours, auto_renew=auto_renew)
    return token_services.token_activate(token=issued.token, now=timezone.now() - started_ago)


# --- What triggers each kind (each one through its real job or service) --------------------------


def trigger_token_expiring(user, capture):
    running_token(user, hours=24, started_ago=timedelta(hours=2))
    with capture(execute=True):
        assert notify_expiring_tokens.apply().get() == 1


def trigger_low_balance(user, capture):
    fund(user, "5")
    with capture(execute=True):
        assert notify_low_balance.apply().get() == 1


def trigger_renewal_done(user, capture):
    from renewals.services import tokens_renew_due

    running_token(user, started_ago=timedelta(hours=23, minutes=30), auto_renew=True)
    with capture(execute=True):
        assert tokens_renew_due().renewed


def trigger_renewal_failed(user, capture):
    from renewals.services import tokens_renew_due

    running_token(user, started_ago=timedelta(hours=23, minutes=30), auto_renew=True, balance="20")
    with capture(execute=True):
        assert tokens_renew_due().failed


def trigger_payment(user, capture):
    from payments.services import payment_complete, payment_create

    payment = payment_create(user=user, amount=Decimal("42.50"), provider="mock")
    with capture(execute=True):
        assert payment_complete(payment_id=payment.pk, source="test").credited


CASES = [
    ("notify_token_expiring", NotificationKind.TOKEN_EXPIRING, trigger_token_expiring),
    ("notify_low_balance", NotificationKind.BALANCE_LOW, trigger_low_balance),
    ("notify_renewal", NotificationKind.AUTO_RENEW_DONE, trigger_renewal_done),
    ("notify_renewal", NotificationKind.AUTO_RENEW_FAILED, trigger_renewal_failed),
    ("notify_payment", NotificationKind.PAYMENT_RECEIVED, trigger_payment),
]
CASE_IDS = [kind for _field, kind, _trigger in CASES]


def test_defaults_are_on():
    user = User.objects.get(pk=UserFactory().pk)
    assert all(getattr(user, field) is True for field in PREFERENCES)


@pytest.mark.parametrize("field,kind,trigger", CASES, ids=CASE_IDS)
def test_preference_on_sends_one_email(field, kind, trigger, django_capture_on_commit_callbacks):
    user = UserFactory(language="en")
    trigger(user, django_capture_on_commit_callbacks)
    notification = Notification.objects.get(user=user, kind=kind)
    assert notification.email_status == EmailStatus.SENT
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [user.email]


@pytest.mark.parametrize("field,kind,trigger", CASES, ids=CASE_IDS)
def test_preference_off_sends_no_email(field, kind, trigger, django_capture_on_commit_callbacks):
    user = UserFactory(language="en", **{field: False})
    trigger(user, django_capture_on_commit_callbacks)
    # Still decided and recorded (de-duplication rests on this row), only the email is skipped.
    notification = Notification.objects.get(user=user, kind=kind)
    assert notification.email_status == EmailStatus.SKIPPED
    assert notification.last_error == services.EMAIL_TURNED_OFF
    assert mail.outbox == []


@pytest.mark.parametrize("field,kind,trigger", CASES, ids=CASE_IDS)
def test_other_switches_do_not_stop_this_email(field, kind, trigger, django_capture_on_commit_callbacks):
    user = UserFactory(language="en", **{other: False for other in PREFERENCES if other != field})
    trigger(user, django_capture_on_commit_callbacks)
    assert Notification.objects.get(user=user, kind=kind).email_status == EmailStatus.SENT
    assert len(mail.outbox) == 1


def test_referral_bonus_email_has_no_switch(django_capture_on_commit_callbacks):
    user = UserFactory(language="en", **dict.fromkeys(PREFERENCES, False))
    with django_capture_on_commit_callbacks(execute=True):
        services.notification_create(
            user=user,
            kind=NotificationKind.REFERRAL_BONUS,
            context={
                "referred_username": "friend",
                "deposit_amount": "150.00",
                "bonus": "15.00",
                "total_bonus": "15.00",
                "balance": "15.00",
            },
        )
    assert len(mail.outbox) == 1


def test_low_balance_once_per_24h_holds_while_switched_off(django_capture_on_commit_callbacks):
    user = UserFactory(language="en", notify_low_balance=False)
    fund(user, "5")
    with django_capture_on_commit_callbacks(execute=True):
        assert notify_low_balance.apply().get() == 1
    assert mail.outbox == []
    User.objects.filter(pk=user.pk).update(notify_low_balance=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert notify_low_balance.apply().get() == 0  # already decided within 24 h
    assert mail.outbox == []
    later = timezone.now() + timedelta(hours=24, minutes=1)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        assert notify_low_balance.apply().get() == 1
    assert len(mail.outbox) == 1
    assert Notification.objects.filter(user=user, kind=NotificationKind.BALANCE_LOW).count() == 2


def test_expiring_token_is_still_announced_once_while_switched_off(django_capture_on_commit_callbacks):
    user = UserFactory(language="en", notify_token_expiring=False)
    running_token(user, hours=24, started_ago=timedelta(hours=2))
    for expected in (1, 0, 0):
        with django_capture_on_commit_callbacks(execute=True):
            assert notify_expiring_tokens.apply().get() == expected
    assert mail.outbox == []
    assert Notification.objects.filter(user=user, kind=NotificationKind.TOKEN_EXPIRING).count() == 1


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_webhooks_are_not_affected(receiver, django_capture_on_commit_callbacks):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    user = UserFactory(language="en", **dict.fromkeys(PREFERENCES, False))
    webhook_endpoint_create(user=user, url=receiver.url, events=["token.expiring", "balance.low"])
    running_token(user, hours=12, balance="15")  # a 12 h token costs 10: 5 ZNC left, below 10
    with django_capture_on_commit_callbacks(execute=True):
        assert notify_expiring_tokens.apply().get() == 1
        assert notify_low_balance.apply().get() == 1
    assert mail.outbox == []
    expected = ["balance.low", "token.expiring"]
    assert sorted(WebhookDelivery.objects.values_list("event", flat=True)) == expected
    assert sorted(r.json["type"] for r in receiver.received) == expected


def test_switched_off_after_the_decision_skips_the_queued_email(django_capture_on_commit_callbacks):
    user = UserFactory(language="en")
    with django_capture_on_commit_callbacks(execute=False):  # the task is queued, not yet run
        notification = services.notification_create(
            user=user, kind=NotificationKind.BALANCE_LOW, context={"balance": "1.00", "threshold": "10.00"}
        )
    assert notification.email_status == EmailStatus.PENDING
    User.objects.filter(pk=user.pk).update(notify_low_balance=False)
    send_notification_email.apply(args=[notification.pk])
    notification.refresh_from_db()
    assert mail.outbox == [] and notification.email_status == EmailStatus.SKIPPED
    assert notification.attempts == 0


# --- The page --------------------------------------------------------------------------------------


@pytest.fixture
def customer(db):
    return UserFactory(language="en")


@pytest.fixture
def page(customer):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(customer)
    return client


def checked(body: str, field: str) -> bool:
    start = body.index(f'name="{field}"')
    tag = body[body.rindex("<input", 0, start) : body.index(">", start)]
    return "checked" in tag


def test_page_needs_login():
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_page_shows_the_switches_and_is_in_the_menu(page):
    response = page.get(PAGE)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/account/notifications/"' in body  # the account menu
    assert "csrfmiddlewaretoken" in body and 'method="post"' in body
    for field in PREFERENCES:
        assert f'type="checkbox" name="{field}"' in body and checked(body, field)
    assert "10.00 ZNC" in body  # the low-balance threshold is explained
    assert 'href="/account/auto-renewal/"' in body


def test_page_round_trip(page, customer):
    response = page.post(PAGE, {"notify_token_expiring": "on", "notify_renewal": "on"})
    assert response.status_code == 302 and response["Location"] == PAGE
    customer.refresh_from_db()
    assert customer.notify_token_expiring and customer.notify_renewal
    assert not customer.notify_low_balance and not customer.notify_payment
    body = page.get(PAGE).content.decode()
    assert "Your notification preferences have been saved." in body
    assert checked(body, "notify_token_expiring") and not checked(body, "notify_payment")
    entry = AuditLog.objects.get(action="user.profile_update")
    assert entry.details["fields"] == ["notify_low_balance", "notify_payment"]
    # All boxes unticked is an empty form: everything off.
    assert page.post(PAGE, {}).status_code == 302
    customer.refresh_from_db()
    assert not any(getattr(customer, field) for field in PREFERENCES)
    # And back on.
    page.post(PAGE, dict.fromkeys(PREFERENCES, "on"))
    customer.refresh_from_db()
    assert all(getattr(customer, field) for field in PREFERENCES)


def test_page_post_needs_csrf(customer):
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(customer)
    assert client.post(PAGE, {}).status_code == 403
    customer.refresh_from_db()
    assert all(getattr(customer, field) for field in PREFERENCES)


def test_page_in_russian():
    user = UserFactory(language="ru")
    client = Client(HTTP_ACCEPT_LANGUAGE="ru")
    client.force_login(user)
    body = client.get(PAGE).content.decode()
    assert "Уведомления" in body and "Сохранить" in body
    assert "Email me when" not in body and "A token expires soon" not in body


# --- The API -----------------------------------------------------------------------------------------


def test_me_includes_the_preferences(auth_client):
    data = auth_client.get(ME).json()
    assert {field: data[field] for field in PREFERENCES} == dict.fromkeys(PREFERENCES, True)


def test_me_patch_round_trip(auth_client, user):
    response = auth_client.patch(
        ME,
        {"notify_low_balance": False, "notify_payment": False, "full_name": "Ivan P.", "language": "en"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["notify_low_balance"] is False and data["notify_payment"] is False
    assert data["notify_token_expiring"] is True and data["notify_renewal"] is True
    assert data["full_name"] == "Ivan P." and data["language"] == "en"
    user.refresh_from_db()
    assert (user.notify_low_balance, user.notify_payment, user.full_name, user.language) == (
        False,
        False,
        "Ivan P.",
        "en",
    )
    assert auth_client.get(ME).json()["notify_payment"] is False
    # Back on, one field at a time.
    assert auth_client.patch(ME, {"notify_payment": True}, format="json").json()["notify_payment"] is True
    user.refresh_from_db()
    assert user.notify_payment is True and user.notify_low_balance is False


@pytest.mark.parametrize(
    "body",
    [
        {"notify_payment": False, "balance": "1000.00"},
        {"notify_payment": False, "email": "other@example.com"},
        {"notify_payment": False, "is_staff": True},
        {"notify_payment": False, "auto_renew_min_balance": "5"},
        {"notify_payment": False, "notify_everything": False},
    ],
)
def test_me_patch_unknown_field_is_400_and_changes_nothing(auth_client, user, body):
    before = User.objects.filter(pk=user.pk).values().get()
    response = auth_client.patch(ME, body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "unknown_field" and error["detail"]
    unknown = next(key for key in body if key != "notify_payment")
    assert unknown in error["detail"]
    assert User.objects.filter(pk=user.pk).values().get() == before
    assert not AuditLog.objects.filter(action="user.profile_update").exists()


@pytest.mark.parametrize(
    "body,code",
    [
        ({}, "no_changes"),
        ({"notify_payment": "maybe"}, "invalid"),
        ({"language": "de"}, "invalid"),
        ({"full_name": "x" * 256}, "invalid"),
    ],
)
def test_me_patch_invalid_values_are_400(auth_client, user, body, code):
    before = User.objects.filter(pk=user.pk).values().get()
    response = auth_client.patch(ME, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["detail"]
    assert User.objects.filter(pk=user.pk).values().get() == before


def test_me_patch_needs_auth(api_client):
    response = api_client.patch(ME, {"notify_payment": False}, format="json")
    assert response.status_code == 401 and response.json()["code"]
