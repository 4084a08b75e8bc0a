from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("proxy", "0002_scale_indexes"),
    ]

    operations = [
        AddIndexSafely(
            model_name="proxysession",
            index=models.Index(
                fields=["started_at", "id"],
                include=("request_count", "bytes_in", "bytes_out"),
                name="session_started_cover_idx",
            ),
        ),
        # Replaced by the covering index above (dropped after it exists).
        migrations.RemoveIndex(model_name="proxysession", name="session_started_idx"),
    ]
