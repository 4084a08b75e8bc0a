from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("tokens", "0003_scale_indexes"),
    ]

    operations = [
        AddIndexSafely(
            model_name="accesstoken",
            index=models.Index(
                condition=models.Q(("activated_at__isnull", True), ("revoked_at__isnull", True)),
                fields=["created_at", "id"],
                name="token_not_activated_idx",
            ),
        ),
    ]
