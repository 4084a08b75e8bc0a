from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely

TRGM_COLUMNS = ("username", "email", "full_name")


def trigram_indexes(apps, schema_editor):
    """PostgreSQL only: substring search of the staff user list (`admin/users?search=`) through
    pg_trgm GIN indexes, built concurrently. Nothing to do elsewhere (SQLite scans)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRGM_COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS user_{column}_trgm_idx "
            f"ON accounts_user USING gin ({column} gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in TRGM_COLUMNS:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS user_{column}_trgm_idx")


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("accounts", "0004_scale_indexes"),
    ]

    operations = [
        AddIndexSafely(
            model_name="user",
            index=models.Index(fields=["referred_by", "date_joined", "id"], name="user_referred_joined_idx"),
        ),
        migrations.RunPython(trigram_indexes, drop_trigram_indexes, elidable=False),
    ]
