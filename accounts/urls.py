from django.urls import path
from rest_framework_simplejwt.views import TokenRefreshView

from accounts import api

urlpatterns = [
    path("auth/register", api.RegisterView.as_view(), name="auth-register"),
    path("auth/login", api.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", TokenRefreshView.as_view(), name="auth-refresh"),
    path("users/me", api.MeView.as_view(), name="users-me"),
]
