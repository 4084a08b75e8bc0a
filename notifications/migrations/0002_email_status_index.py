from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        AddIndexSafely(
            model_name="notification",
            index=models.Index(fields=["email_status", "created_at"], name="notif_email_status_idx"),
        ),
    ]
