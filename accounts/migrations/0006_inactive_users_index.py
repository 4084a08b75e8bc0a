from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("accounts", "0005_scale_referrals_and_user_search"),
    ]

    operations = [
        AddIndexSafely(
            model_name="user",
            index=models.Index(condition=models.Q(("is_active", False)), fields=["id"], name="user_inactive_idx"),
        ),
    ]
