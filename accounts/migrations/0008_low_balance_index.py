from decimal import Decimal

from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("accounts", "0007_merge_20261201_1610"),
    ]

    operations = [
        AddIndexSafely(
            model_name="user",
            index=models.Index(
                condition=models.Q(("balance__lt", Decimal("10")), ("is_active", True)),
                fields=["id"],
                name="user_low_balance_idx",
            ),
        ),
    ]
