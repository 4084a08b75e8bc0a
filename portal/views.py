"""Customer pages of the accounts app: landing, sign-up, log-in/out, password reset and change,
dashboard, referrals, profile, notification preferences, language switch. They call the same
services as the API."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import formats, timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import ServicePasswordChangeForm, ServiceSetPasswordForm
from accounts.page_forms import LoginForm, NotificationPreferencesForm, ProfileForm, SignupForm
from accounts.ratelimits import ip_limit_check, ip_limit_count_attempt, ip_limit_count_failure
from analytics import charts
from analytics import selectors as usage
from bundles.selectors import bundle_list
from currency.selectors import transaction_list
from referrals.selectors import referral_stats
from tokens.selectors import token_list
from zenzefi.errors import ApplicationError, RateLimited
from zenzefi.page_errors import page_error_message

USAGE_PERIOD_LABELS = {
    "day": gettext_lazy("Day"),
    "week": gettext_lazy("Week"),
    "month": gettext_lazy("Month"),
}


def rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    """The friendly 429 page (with Retry-After) for the auth forms."""
    minutes = max(1, (exc.retry_after + 59) // 60)
    response = render(request, "ratelimited.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def landing(request: HttpRequest) -> HttpResponse:
    prices = [{"hours": hours, "price": price} for hours, price in sorted(settings.TOKEN_PRICES.items())]
    return render(request, "home.html", {"prices": prices, "bundles": bundle_list()})


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:dashboard")
    if request.method == "POST":
        try:
            ip_limit_count_attempt(request, "auth.register")
        except RateLimited as exc:
            return rate_limited(request, exc)
        form = SignupForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = services.user_register(
                    email=data["email"],
                    username=data["username"],
                    password=data["password1"],
                    full_name=data["full_name"],
                    referral_code=data["referral_code"] or None,
                    language=translation.get_language(),
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, page_error_message(exc))
            else:
                auth_login(request, user)
                messages.success(request, _("Welcome, %(name)s! Your account is ready.") % {"name": user})
                return redirect("accounts:dashboard")
    else:
        form = SignupForm(initial={"referral_code": request.GET.get("ref", "").strip()[:32]})
    return render(request, "accounts/signup.html", {"form": form})


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, settings.LOGIN_REDIRECT_URL)
    if request.user.is_authenticated and request.method != "POST":
        return redirect(next_url)
    form = LoginForm(request.POST or None)
    if request.method == "POST":
        try:
            ip_limit_check(request, "auth.login")
        except RateLimited as exc:
            return rate_limited(request, exc)
        if form.is_valid():
            try:
                user = services.user_authenticate(
                    identifier=form.cleaned_data["identifier"].strip(),
                    password=form.cleaned_data["password"],
                    request=request,
                )
            except services.InvalidCredentials:
                ip_limit_count_failure(request, "auth.login")
                form.add_error(None, _("Invalid username/email or password."))
            else:
                auth_login(request, user)
                return HttpResponseRedirect(next_url)
    return render(request, "accounts/login.html", {"form": form, "next": next_url})


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""

    next_page = "/"


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset-by-email, limited per client IP like log-in and sign-up."""

    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def post(self, request, *args, **kwargs):
        try:
            ip_limit_count_attempt(request, "auth.password_reset")
        except RateLimited as exc:
            return rate_limited(request, exc)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        services.user_password_reset_request(email=form.cleaned_data["email"], request=self.request)
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")
    form_class = ServiceSetPasswordForm  # revokes every API session of the user

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.request = self.request
        return form


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


class PasswordChangeView(auth_views.PasswordChangeView):
    """Keeps this page session (Django's update_session_auth_hash); every other session of the
    user, page or API, ends."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")
    form_class = ServicePasswordChangeForm

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.request = self.request
        return form

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password has been changed."))
        return response


def _usage_context(request: HttpRequest) -> dict:
    period = request.GET.get("period", "day")
    if period not in usage.PERIODS:
        period = "day"
    # The same usage as GET /api/v1/analytics/usage (analytics.selectors), in bars per hour or day.
    series = usage.usage_series(user=request.user, period=period)
    # Every label names the date, and hours carry the zone (the axis said only "13:00" before).
    fmt = "DATETIME_FORMAT" if period == "day" else "DATE_FORMAT"
    labels = [formats.date_format(p.start, fmt) for p in series.points]
    requests_chart, bytes_chart = charts.usage_charts(series, labels)
    return {
        "usage": series,
        "usage_period": period,
        "usage_zone": timezone.get_current_timezone_name(),
        "usage_axis": (labels[0], formats.date_format(series.end, fmt)),
        "usage_periods": USAGE_PERIOD_LABELS.items(),
        "requests_chart": requests_chart,
        "bytes_chart": bytes_chart,
    }


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user  # read from the session in this request: its balance is current
    context = {
        # "Active" = activated, not expired, not revoked (AccessTokenQuerySet.active), as everywhere.
        "active_tokens": list(token_list(user=user, active_only=True)[:10]),
        # The count of all of them: the list above shows the first 10 only.
        "active_token_count": token_list(user=user, active_only=True).count(),
        "waiting_tokens": list(token_list(user=user).not_activated()[:10]),
        "recent_transactions": list(transaction_list(user=user)[:5]),
        **_usage_context(request),
    }
    return render(request, "accounts/dashboard.html", context)


def proxy_origin() -> str:
    """The separate origin of browser-mode sessions: settings.PROXY_ORIGIN, or by default
    BACKEND_URL with 127.0.0.1 and localhost swapped (another origin on the same machine)."""
    configured = getattr(settings, "PROXY_ORIGIN", "")
    if configured:
        return configured.rstrip("/")
    backend = settings.BACKEND_URL.rstrip("/")
    if "127.0.0.1" in backend:
        return backend.replace("127.0.0.1", "localhost", 1)
    if "localhost" in backend:
        return backend.replace("localhost", "127.0.0.1", 1)
    return backend


@login_required
def connect(request: HttpRequest) -> HttpResponse:
    """How to use a token: the desktop client's headers, the device id, browser mode and a
    copyable example (with a placeholder, never a real token)."""
    backend = settings.BACKEND_URL.rstrip("/")
    proxy_url = f"{backend}/api/v1/proxy/"
    token_word = _("YOUR_TOKEN")
    placeholder = f"<{token_word}>"
    headers = f'-H "X-Access-Token: {placeholder}" -H "X-Device-ID: laptop-1"'
    curl = (
        f"curl {headers} \\\n     {backend}/api/v1/proxy/status\n"
        f"curl {headers} \\\n     {proxy_url}\n"
        f"curl -X POST {headers} \\\n     {backend}/api/v1/proxy/session"
    )
    context = {
        "backend_url": backend,
        "proxy_url": proxy_url,
        "status_url": f"{backend}/api/v1/proxy/status",
        "session_url": f"{backend}/api/v1/proxy/session",
        "proxy_origin": proxy_origin(),
        "idle_minutes": settings.SESSION_IDLE_MINUTES,
        "curl_example": curl,
        "placeholder": placeholder,
    }
    return render(request, "accounts/connect.html", context)


@login_required
def referrals(request: HttpRequest) -> HttpResponse:
    """The same stats as GET /api/v1/users/me/referrals (referrals.selectors)."""
    stats = referral_stats(user=request.user, limit=50)
    stats["total_bonus_earned"] = Decimal(stats["total_bonus_earned"])
    return render(request, "accounts/referrals.html", {"stats": stats})


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        # The accounts service writes and audits the change (not form.save()).
        services.user_self_update(
            user=user,
            request=request,
            full_name=form.cleaned_data["full_name"],
            language=form.cleaned_data["language"],
        )
        translation.activate(user.language)
        messages.success(request, _("Your profile has been saved."))
        response = redirect("accounts:profile")
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, user.language, samesite="Lax")
        return response
    password_form = ServicePasswordChangeForm(user)
    return render(request, "accounts/profile.html", {"form": form, "password_form": password_form})


@login_required
@require_http_methods(["GET", "POST"])
def notification_preferences(request: HttpRequest) -> HttpResponse:
    """Which notification emails the customer wants (the same switches as PATCH users/me)."""
    user = request.user
    user.refresh_from_db(fields=list(services.NOTIFICATION_PREFERENCE_FIELDS))
    if request.method == "POST":  # (not `request.POST or None`: all boxes unticked is an empty POST)
        form = NotificationPreferencesForm(request.POST)
        if form.is_valid():
            try:
                services.user_self_update(user=user, request=request, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, page_error_message(exc))
            else:
                messages.success(request, _("Your notification preferences have been saved."))
                return redirect("accounts:notifications")
    else:
        form = NotificationPreferencesForm(
            initial={field: getattr(user, field) for field in services.NOTIFICATION_PREFERENCE_FIELDS}
        )
    return render(request, "accounts/notifications.html", {"form": form})


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's `set_language` (cookie + redirect to `next`); a signed-in user's choice is also
    saved as their preference, which outranks the cookie and Accept-Language."""
    response = i18n.set_language(request)
    language = request.POST.get("language")
    user = request.user
    if user.is_authenticated and language in dict(settings.LANGUAGES) and user.language != language:
        services.user_self_update(user=user, language=language, request=request)  # audited
    return response
