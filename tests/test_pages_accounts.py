"""Customer pages of the accounts app: landing, sign-up, log-in/out, password reset and change,
dashboard, referrals, profile. Django test client; English pages unless a test says otherwise."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.models import AuditLog
from currency.models import Transaction
from payments.deposits import deposit_mock
from proxy.models import ProxySession
from tests.factories import DEFAULT_PASSWORD, UserFactory, fund
from tokens.services import token_purchase

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SIGNUP = "/accounts/signup/"
LOGIN = "/accounts/login/"
GOOD_SIGNUP = {
    "email": "Olga@Example.com",
    "username": "olga",
    "full_name": "Olga K.",
    "password1": "Zenzefi-2026-strong",
    "password2": "Zenzefi-2026-strong",
    "referral_code": "",
}


@pytest.fixture
def user(db):
    """A customer whose saved language is English (the model's default is Russian)."""
    return UserFactory(language="en")


@pytest.fixture
def client():
    return Client(**EN)


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


# --- landing -----------------------------------------------------------------------------


def test_landing_shows_prices_and_bundles(client):
    response = client.get("/")
    assert response.status_code == 200
    body = text(response)
    assert "Token prices" in body and "24 hours" in body and "18.00" in body and "300.00" in body
    assert "Starter Pack" in body and "81.00" in body and "Pro Bundle" in body
    assert 'href="/accounts/signup/"' in body
    assert "/static/vendor/pico/pico.min.css" in body


def test_landing_for_a_customer_links_the_dashboard(logged_in):
    body = text(logged_in.get("/"))
    assert 'href="/account/"' in body and "Log out" in body


def test_static_css_is_served(client):
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/pico/pico.min.css") and finders.find("css/zenzefi.css")


# --- sign up -----------------------------------------------------------------------------


def test_signup_page_renders(client):
    response = client.get(SIGNUP)
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in text(response) and "Create your account" in text(response)


def test_signup_prefills_referral_code_from_ref(client):
    referrer = UserFactory()
    body = text(client.get(SIGNUP, {"ref": referrer.referral_code}))
    assert f'value="{referrer.referral_code}"' in body


def test_signup_creates_user_logs_in_and_lands_on_dashboard(client):
    referrer = UserFactory()
    response = client.post(
        SIGNUP, {**GOOD_SIGNUP, "referral_code": referrer.referral_code.lower()}, REMOTE_ADDR="10.1.0.1"
    )
    assert response.status_code == 302 and response["Location"] == "/account/"
    user = User.objects.get(username="olga")
    assert user.email == "olga@example.com" and user.full_name == "Olga K."
    assert user.referred_by == referrer
    assert user.language == "en"  # the language the page was shown in
    assert user.password.startswith("argon2$")
    assert AuditLog.objects.filter(action="user.register", actor=user).exists()
    dashboard = client.get("/account/")
    assert dashboard.status_code == 200 and dashboard.context["user"] == user
    assert "Welcome, olga!" in text(dashboard)


@pytest.mark.parametrize(
    "overrides,field,message",
    [
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"username": "x"}, "username", "at least 3 characters"),
        ({"username": "bad name!"}, "username", "Enter a valid username"),
        ({"password2": "Something-else-2026"}, "password2", "The two passwords do not match."),
        ({"password1": "12345678901", "password2": "12345678901"}, "password1", "entirely numeric"),
        ({"referral_code": "NOSUCHCODE12"}, "referral_code", "Unknown referral code."),
    ],
)
def test_signup_errors_show_next_to_the_field_keep_input_and_create_nothing(
    client, overrides, field, message
):
    response = client.post(SIGNUP, {**GOOD_SIGNUP, **overrides}, REMOTE_ADDR="10.1.0.2")
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors and message in " ".join(form.errors[field])
    body = text(response)
    assert message.replace("'", "&#x27;") in body
    assert 'value="Olga K."' in body  # what was typed is kept
    assert 'aria-invalid="true"' in body
    assert not User.objects.filter(username="olga").exists()
    assert "_auth_user_id" not in client.session


def test_signup_duplicate_email_is_a_form_error(client):
    UserFactory(email="olga@example.com")
    response = client.post(SIGNUP, GOOD_SIGNUP, REMOTE_ADDR="10.1.0.3")
    assert "A user with this email already exists." in response.context["form"].errors["email"]
    assert User.objects.count() == 1


def test_signup_is_rate_limited_per_ip_with_a_friendly_page(client):
    for i in range(5):
        response = client.post(SIGNUP, {**GOOD_SIGNUP, "username": "x"}, REMOTE_ADDR="10.9.9.9")
        assert response.status_code == 200, i
    response = client.post(SIGNUP, GOOD_SIGNUP, REMOTE_ADDR="10.9.9.9")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "Too many attempts" in text(response) and "try again in" in text(response)
    assert not User.objects.filter(username="olga").exists()
    assert client.post(SIGNUP, GOOD_SIGNUP, REMOTE_ADDR="10.9.9.10").status_code == 302


def test_signed_in_user_visiting_signup_goes_to_dashboard(logged_in):
    assert logged_in.get(SIGNUP)["Location"] == "/account/"


# --- log in / log out --------------------------------------------------------------------


def test_login_page_renders(client):
    body = text(client.get(LOGIN))
    assert "Username or email" in body and "Forgot your password?" in body


@pytest.mark.parametrize("identifier", ["loginuser", "LoginUser", "login@example.com"])
def test_login_with_username_or_email(client, identifier):
    UserFactory(username="loginuser", email="login@example.com")
    response = client.post(LOGIN, {"identifier": identifier, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    assert AuditLog.objects.filter(action="auth.login").count() == 1


def test_login_failure_shows_error_and_keeps_identifier(client, user):
    response = client.post(LOGIN, {"identifier": user.username, "password": "wrong"})
    assert response.status_code == 200
    body = text(response)
    assert "Invalid username/email or password." in body and f'value="{user.username}"' in body
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="auth.login_failed").count() == 1


def test_login_empty_form_shows_field_errors(client):
    response = client.post(LOGIN, {"identifier": "", "password": ""})
    assert response.context["form"].errors.keys() == {"identifier", "password"}
    assert "This field is required." in text(response)


def test_login_follows_a_safe_next_only(client, user):
    ok = client.post(
        LOGIN, {"identifier": user.username, "password": DEFAULT_PASSWORD, "next": "/account/tokens/"}
    )
    assert ok["Location"] == "/account/tokens/"
    client.post("/accounts/logout/")
    evil = client.post(
        LOGIN, {"identifier": user.username, "password": DEFAULT_PASSWORD, "next": "https://evil.example/"}
    )
    assert evil["Location"] == "/account/"


def test_failed_logins_are_rate_limited_and_success_does_not_count(client, user):
    for _ in range(3):
        assert (
            client.post(
                LOGIN, {"identifier": user.username, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.7.0.1"
            ).status_code
            == 302
        )
        client.post("/accounts/logout/")
    for _ in range(5):
        assert (
            client.post(
                LOGIN, {"identifier": user.username, "password": "bad"}, REMOTE_ADDR="10.7.0.1"
            ).status_code
            == 200
        )
    response = client.post(
        LOGIN, {"identifier": user.username, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.7.0.1"
    )
    assert response.status_code == 429 and "Too many attempts" in text(response)
    assert "_auth_user_id" not in client.session


def test_logout_is_post_only(logged_in):
    assert logged_in.get("/accounts/logout/").status_code == 405
    assert logged_in.get("/account/").status_code == 200
    response = logged_in.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert logged_in.get("/account/").status_code == 302


# --- password reset and change -----------------------------------------------------------


def test_password_reset_by_email(client, user, mailoutbox):
    assert "Reset your password" in text(client.get("/accounts/password-reset/"))
    response = client.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.2.0.1")
    assert response.status_code == 302 and response["Location"] == "/accounts/password-reset/done/"
    assert "Check your email" in text(client.get(response["Location"]))
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [user.email] and mail.subject == "Zenzefi: reset your password"
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mail.body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in text(form_page)
    new = "Another-Strong-Pass-2026"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/accounts/reset/done/"
    assert "Password changed" in text(client.get(done["Location"]))
    user.refresh_from_db()
    assert user.check_password(new)


def test_password_reset_unknown_email_sends_nothing_but_looks_the_same(client, mailoutbox):
    response = client.post(
        "/accounts/password-reset/", {"email": "nobody@example.com"}, REMOTE_ADDR="10.2.0.2"
    )
    assert response["Location"] == "/accounts/password-reset/done/" and mailoutbox == []


def test_password_reset_bad_link_explains(client):
    assert "This link is no longer valid" in text(client.get("/accounts/reset/MQ/bad-token/"))


def test_password_reset_is_rate_limited(client, user, mailoutbox):
    for _ in range(5):
        client.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.2.0.3")
    response = client.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.2.0.3")
    assert response.status_code == 429 and "Too many attempts" in text(response)
    assert len(mailoutbox) == 5


def test_password_change(logged_in, user):
    new = "Changed-Pass-2026-ok"
    bad = logged_in.post(
        "/account/password/", {"old_password": "wrong", "new_password1": new, "new_password2": new}
    )
    assert bad.status_code == 200 and "old_password" in bad.context["form"].errors
    user.refresh_from_db()
    assert not user.check_password(new)
    good = logged_in.post(
        "/account/password/", {"old_password": DEFAULT_PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert good["Location"] == "/account/profile/"
    user.refresh_from_db()
    assert user.check_password(new)
    assert logged_in.get("/account/").status_code == 200  # still signed in


# --- pages that need a login -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/account/",
        "/account/referrals/",
        "/account/profile/",
        "/account/password/",
        "/account/tokens/",
        "/account/tokens/buy/",
        "/account/tokens/1/revoke/",
        "/account/topup/",
        "/account/transactions/",
        "/account/bundles/",
        "/account/bundles/1/buy/",
    ],
)
def test_account_pages_redirect_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


# --- dashboard ---------------------------------------------------------------------------


def test_dashboard_shows_balance_active_tokens_and_transactions(logged_in, user):
    fund(user, "1234.5")
    issued = token_purchase(user=user, duration_hours=24)
    response = logged_in.get("/account/")
    body = text(response)
    assert response.status_code == 200
    assert '<span data-testid="balance">1,216.50</span>' in body
    assert f"<code>{issued.token.prefix}…</code>" in body
    assert "Not activated yet" in body
    assert "Top-up" in body and "Purchase" in body and "−18.00" in body
    assert issued.plaintext not in body


def test_dashboard_shows_time_left_of_an_activated_token(logged_in, user):
    fund(user, "100")
    issued = token_purchase(user=user, duration_hours=24)
    from tokens.services import token_activate

    token_activate(token=issued.token, now=timezone.now() - timedelta(hours=2))
    body = text(logged_in.get("/account/"))
    assert re.search(r"21\xa0hours, 59\xa0minutes left|22\xa0hours left", body)


def test_dashboard_counts_every_active_token_not_only_the_listed_ten(logged_in, user):
    from tokens.services import token_activate

    fund(user, "1000")
    for _ in range(12):
        token_activate(token=token_purchase(user=user, duration_hours=24).token)
    token_purchase(user=user, duration_hours=24)  # waiting: not active
    body = text(logged_in.get("/account/"))
    assert '<p class="stat-value" data-testid="active-token-count">12</p>' in body


# The last 24 hours / 7 / 30 days up to now, one bar per clock hour or date (UTC) they touch
# (analytics.selectors: the same window as GET analytics/usage).
@pytest.mark.parametrize("period,bars", [("day", 25), ("week", 8), ("month", 31), ("bogus", 25)])
def test_dashboard_usage_chart_periods(logged_in, user, period, bars):
    response = logged_in.get("/account/", {"period": period})
    assert response.status_code == 200
    assert len(response.context["requests_chart"].bars) == bars
    assert text(response).count("<svg") == 2
    assert "No traffic through the proxy in this period yet." in text(response)


def test_dashboard_usage_chart_aggregates_proxy_sessions(logged_in, user):
    fund(user, "10")
    token = token_purchase(user=user, duration_hours=1).token
    now = timezone.now()
    for minutes, count, size in [(5, 10, 1000), (6, 5, 500), (60 * 30, 99, 99)]:
        started = now - timedelta(minutes=minutes)
        ProxySession.objects.create(
            key=f"k{minutes}",
            token=token,
            user=user,
            device_id="dev",
            started_at=started,
            last_seen=started,
            request_count=count,
            bytes_in=size,
            bytes_out=size,
        )
    other = UserFactory()
    fund(other, "10")
    ProxySession.objects.create(
        key="other",
        token=token_purchase(user=other, duration_hours=1).token,
        user=other,
        device_id="d",
        started_at=now,
        last_seen=now,
        request_count=1000,
    )
    day = logged_in.get("/account/", {"period": "day"}).context["usage"]
    assert day.total_requests == 15 and day.total_bytes == 3000
    week = logged_in.get("/account/", {"period": "week"}).context["usage"]
    assert week.total_requests == 15 + 99
    response = logged_in.get("/account/", {"period": "day"})
    body = text(response)
    assert "15 requests" in body and "2.9\xa0KB" in body
    peak = response.context["requests_chart"].peak_label
    assert peak in {"15", "10"}  # 15 unless the two sessions straddle an hour boundary
    assert f"peak {peak}</small>" in body


# --- referrals and profile ---------------------------------------------------------------


def test_referrals_page_shows_code_link_and_stats(logged_in, user, settings):
    friend = UserFactory(referred_by=user, username="friend1")
    UserFactory(referred_by=user, username="friend2")
    UserFactory(username="stranger")
    deposit_mock(user=friend, amount=Decimal("150.00"))  # a first top-up over 100 ZNC: 10 % bonus
    body = text(logged_in.get("/account/referrals/"))
    assert user.referral_code in body
    link = f"{settings.BACKEND_URL}/accounts/signup/?ref={user.referral_code}"
    assert f'value="{link}"' in body
    assert '<dd data-testid="referred-count">2</dd>' in body
    assert '<dd data-testid="qualifying-count">1</dd>' in body
    assert '<dd data-testid="bonus-earned">15.00 ZNC</dd>' in body
    assert "friend1" in body and "friend2" in body and "stranger" not in body


def test_the_share_link_signs_up_a_referred_customer(client):
    referrer = UserFactory()
    page = client.get(f"/accounts/signup/?ref={referrer.referral_code}")
    data = {**GOOD_SIGNUP, "referral_code": page.context["form"].initial["referral_code"]}
    assert client.post(SIGNUP, data, REMOTE_ADDR="10.1.0.9").status_code == 302
    assert User.objects.get(username="olga").referred_by == referrer


def test_profile_saves_name_and_language(logged_in, user):
    assert logged_in.get("/account/profile/").status_code == 200
    response = logged_in.post("/account/profile/", {"full_name": "New Name", "language": "en"})
    assert response["Location"] == "/account/profile/"
    user.refresh_from_db()
    assert user.full_name == "New Name" and user.language == "en"


def test_profile_bad_language_is_a_field_error_and_changes_nothing(logged_in, user):
    before = user.full_name
    response = logged_in.post("/account/profile/", {"full_name": "X", "language": "de"})
    assert response.status_code == 200 and "language" in response.context["form"].errors
    user.refresh_from_db()
    assert user.full_name == before


# --- CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,data",
    [
        (SIGNUP, GOOD_SIGNUP),
        (LOGIN, {"identifier": "x", "password": "y"}),
        ("/accounts/password-reset/", {"email": "a@example.com"}),
        ("/i18n/setlang/", {"language": "en"}),
    ],
)
def test_anonymous_forms_enforce_csrf(path, data):
    client = Client(enforce_csrf_checks=True, **EN)
    response = client.post(path, data)
    assert response.status_code == 403 and "The form has expired" in text(response)
    assert not User.objects.filter(username="olga").exists()


@pytest.mark.parametrize(
    "path,data",
    [
        ("/accounts/logout/", {}),
        ("/account/profile/", {"full_name": "Hacked", "language": "en"}),
        (
            "/account/password/",
            {
                "old_password": DEFAULT_PASSWORD,
                "new_password1": "Aa-123456789x",
                "new_password2": "Aa-123456789x",
            },
        ),
        ("/account/tokens/buy/", {"duration_hours": "1", "scope": "full", "step": "confirm"}),
        ("/account/topup/", {"amount": "10"}),
        ("/account/topup/mock/", {"checkout_id": "x", "action": "pay"}),
        ("/account/bundles/1/buy/", {}),
    ],
)
def test_account_forms_enforce_csrf(user, path, data):
    fund(user, "500")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(path, data).status_code == 403
    user.refresh_from_db()
    assert user.balance == Decimal("500.00") and user.full_name != "Hacked"
    assert Transaction.objects.filter(user=user).count() == 1
    assert client.get("/account/").status_code == 200


def test_a_form_with_the_csrf_token_is_accepted(user):
    client = Client(enforce_csrf_checks=True, **EN)
    client.force_login(user)
    page = client.get("/account/profile/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(page)).group(1)
    response = client.post(
        "/account/profile/", {"full_name": "Real", "language": "en", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_unknown_page_is_a_friendly_404_and_api_paths_stay_json(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "Page not found" in text(response)
    assert "Страница не найдена" in text(Client(HTTP_ACCEPT_LANGUAGE="ru").get("/no-such-page/"))
    api = client.get("/api/v1/no-such-endpoint")
    assert api.status_code == 404 and api.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        SIGNUP,
        LOGIN,
        "/accounts/password-reset/",
        "/account/",
        "/account/tokens/",
        "/account/tokens/buy/",
        "/account/bundles/",
        "/account/topup/",
        "/account/transactions/",
        "/account/referrals/",
        "/account/profile/",
    ],
)
def test_pages_need_no_javascript_and_every_post_form_has_a_csrf_token(client, user, path):
    if path.startswith("/account/"):
        client.force_login(user)
    body = text(client.get(path))
    # The only script is the optional copy button; navigation and forms are plain HTML.
    assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/js/pages.js" defer>']
    assert " onclick=" not in body and "javascript:" not in body
    forms = re.findall(r"<form[^>]*>.*?</form>", body, flags=re.S)
    assert forms
    for form in forms:
        if 'method="post"' in form:
            assert 'name="csrfmiddlewaretoken"' in form, form[:200]
