"""Customer page addresses of the accounts app (SPEC §14)."""

from django.urls import path

from portal import views

app_name = "accounts"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.login, name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password-reset/done/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("account/", views.dashboard, name="dashboard"),
    path("account/referrals/", views.referrals, name="referrals"),
    path("account/connect/", views.connect, name="connect"),
    path("account/profile/", views.profile, name="profile"),
    path("account/notifications/", views.notification_preferences, name="notifications"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
]
