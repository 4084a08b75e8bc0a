"""The tokens admin changelist's sorts and filters, each on an index (docs/performance.md, "Admin
sort and filter pass"). `token_expiry_desc_idx` serves the sort by expiry descending with the
never-activated tokens' NULL expiries last: PostgreSQL only (SQLite has no NULLS LAST in an index),
so it is SQL here and not in the model state, where SQLite would rebuild it with the table."""

from django.db import migrations, models

from zenzefi.migration_ops import AddIndexSafely


EXPIRY_DESC_INDEX = "token_expiry_desc_idx"


def expiry_desc_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {EXPIRY_DESC_INDEX} "
            "ON tokens_accesstoken (expires_at DESC NULLS LAST, id DESC)"
        )


def expiry_desc_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {EXPIRY_DESC_INDEX}")


class Migration(migrations.Migration):
    # Indexes are built CONCURRENTLY on PostgreSQL (no write lock on a large table).
    atomic = False

    dependencies = [
        ("tokens", "0007_drop_digest_pattern_index"),
    ]

    operations = [
        migrations.RunPython(expiry_desc_index, expiry_desc_index_drop, elidable=False),
        AddIndexSafely(
            model_name="accesstoken",
            index=models.Index(
                condition=models.Q(("revoked_at__isnull", False)),
                fields=["created_at", "id"],
                name="token_revoked_idx",
            ),
        ),
        AddIndexSafely(
            model_name="accesstoken",
            index=models.Index(
                condition=models.Q(("activated_at__isnull", False), ("revoked_at__isnull", True)),
                fields=["created_at", "id"],
                name="token_activated_live_idx",
            ),
        ),
        AddIndexSafely(
            model_name="accesstoken",
            index=models.Index(
                condition=models.Q(("auto_renew", True)),
                fields=["created_at", "id"],
                name="token_auto_renew_idx",
            ),
        ),
        AddIndexSafely(
            model_name="accesstoken",
            index=models.Index(fields=["duration_hours", "created_at", "id"], name="token_duration_idx"),
        ),
    ]
