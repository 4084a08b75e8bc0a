"""Create the staff login and a demo customer for a local installation (idempotent).

Reads DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD (the Django createsuperuser
variables) and DEMO_USER_PASSWORD; prints the logins. Existing users are left as they are.
"""

import os
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from currency.models import TransactionType
from currency.services import balance_change


class Command(BaseCommand):
    help = "Create the staff user and a demo customer (with 100 ZNC) if they do not exist."

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@zenzefi.local")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not password:
            raise CommandError("Set DJANGO_SUPERUSER_PASSWORD (scripts/start writes one into .env).")
        with transaction.atomic():
            staff = User.objects.filter(username__iexact=username).first()
            if staff is None:
                staff = User.objects.create_superuser(username=username, email=email, password=password)
                self.stdout.write(f"Created staff user {staff.username}.")
            demo_password = os.environ.get("DEMO_USER_PASSWORD")
            if demo_password and not User.objects.filter(username__iexact="demo").exists():
                demo = User.objects.create_user(
                    username="demo",
                    email="demo@zenzefi.local",
                    password=demo_password,
                    full_name="Demo Customer",
                )
                balance_change(
                    user=demo,
                    amount=Decimal("100.00"),
                    transaction_type=TransactionType.DEPOSIT,
                    description="Demo balance",
                    reference="bootstrap",
                )
                self.stdout.write("Created demo customer demo with 100.00 ZNC.")
