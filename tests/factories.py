from decimal import Decimal
from functools import cache

import factory
from django.contrib.auth.hashers import make_password

from accounts.models import User
from currency.models import TransactionType
from currency.services import balance_change

DEFAULT_PASSWORD = "Corr3ct-Horse-Battery"


@cache
def _default_password_hash() -> str:
    # Hash once with the real (Argon2) hasher and reuse it: every factory user can log in.
    return make_password(DEFAULT_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    full_name = factory.Faker("name")
    password = factory.LazyFunction(_default_password_hash)


def fund(user: User, amount: str | Decimal) -> None:
    """Give a user money the proper way: a DEPOSIT through the ledger service."""
    balance_change(
        user=user,
        amount=Decimal(amount),
        transaction_type=TransactionType.DEPOSIT,
        description="test funding",
    )


# Every permission a staff REST endpoint checks (SPEC §13): the admin's codenames.
STAFF_API_PERMISSIONS = (
    "accounts.view_user",
    "accounts.change_user",
    "accounts.adjust_balance",
    "tokens.view_accesstoken",
    "tokens.revoke_token",
    "payments.complete_payment",
    "bundles.view_tokenbundle",
    "bundles.add_tokenbundle",
    "bundles.change_tokenbundle",
    "bundles.delete_tokenbundle",
    "analytics.view_dashboard",
)


def staff_with(*perms: str, **fields) -> User:
    """A staff user (not a superuser) holding exactly `perms` ("app_label.codename")."""
    from django.contrib.auth.models import Permission

    fields.setdefault("is_staff", True)
    user = UserFactory(**fields)
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache
