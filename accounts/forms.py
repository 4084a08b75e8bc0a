from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    PasswordChangeForm,
    SetPasswordForm,
    UserChangeForm,
    UserCreationForm,
)

from accounts.models import User


class AdminUserCreationForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class AdminUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


# Password forms: Django's validation, then accounts.services.user_password_set, which also
# revokes every API session of the user (issue 11 item 5). `request`/`actor` are set by the view.


class ServicePasswordChangeForm(PasswordChangeForm):
    """The customer's own password change (`/account/password/`)."""

    request = None

    def save(self, commit=True):
        from accounts.services import user_password_set

        return user_password_set(
            user=self.user, password=self.cleaned_data["new_password1"], source="change", request=self.request
        )


class ServiceSetPasswordForm(SetPasswordForm):
    """The new password after a reset by email."""

    request = None

    def save(self, commit=True):
        from accounts.services import user_password_set

        return user_password_set(
            user=self.user, password=self.cleaned_data["new_password1"], source="reset", request=self.request
        )


class ServiceAdminPasswordChangeForm(AdminPasswordChangeForm):
    """Staff setting (or disabling) a user's password in the admin."""

    def save(self, commit=True):
        from accounts.services import user_password_set

        usable = self.cleaned_data.get("set_usable_password", True)
        password = self.cleaned_data["password1"] if usable else None
        return user_password_set(user=self.user, password=password, source="admin")
