"""The default bundles (SPEC §5). Idempotent: an existing bundle of the same name is left alone.
Prices are not stored: they derive from TOKEN_PRICES and the discount."""

from decimal import Decimal

from django.db import migrations

DEFAULTS = [
    {
        "name": "Starter Pack",
        "description": "Five 24-hour tokens at 10 % off: try Zenzefi for a working week.",
        "token_count": 5,
        "duration_hours": 24,
        "discount_percent": Decimal("10.00"),
    },
    {
        "name": "Pro Bundle",
        "description": "Ten 24-hour tokens at 15 % off, for regular work.",
        "token_count": 10,
        "duration_hours": 24,
        "discount_percent": Decimal("15.00"),
    },
    {
        "name": "Ultimate Package",
        "description": "Twenty one-week tokens at 20 % off, for workshops and teams.",
        "token_count": 20,
        "duration_hours": 168,
        "discount_percent": Decimal("20.00"),
    },
    {
        "name": "Month Duo",
        "description": "Two 30-day tokens at 15 % off: a month of access for two devices.",
        "token_count": 2,
        "duration_hours": 720,
        "discount_percent": Decimal("15.00"),
    },
]


def create_defaults(apps, schema_editor):
    TokenBundle = apps.get_model("bundles", "TokenBundle")
    for values in DEFAULTS:
        defaults = {k: v for k, v in values.items() if k != "name"}
        TokenBundle.objects.get_or_create(name=values["name"], defaults={**defaults, "scope": "full"})


def remove_defaults(apps, schema_editor):
    TokenBundle = apps.get_model("bundles", "TokenBundle")
    TokenBundle.objects.filter(name__in=[values["name"] for values in DEFAULTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("bundles", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
