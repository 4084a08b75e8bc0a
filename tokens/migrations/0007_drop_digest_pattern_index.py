"""Drop the `varchar_pattern_ops` index Django created beside the unique index on `digest`
(PostgreSQL only). It serves only `LIKE 'abc%'` on the digest, which nothing does (a token is
looked up by its whole digest through the unique index; the admin searches the separate `prefix`);
pg_stat_user_indexes showed no scan of it after a full scale benchmark, while every insert and
every non-HOT update of a token (the expiry job: 50 000 at a time) wrote an entry into its 60 MB
at 500 000 tokens. Dropped CONCURRENTLY (no lock that blocks reads or writes); the index is found
by its definition, not by Django's generated name. Backwards recreates it."""

from django.db import migrations

FIND = """
SELECT i.relname FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname = 'tokens_accesstoken' AND pg_get_indexdef(x.indexrelid) LIKE '%%(digest varchar_pattern_ops)%%'
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FIND)
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS tokens_accesstoken_digest_eedbe166_like "
        "ON tokens_accesstoken (digest varchar_pattern_ops)"
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tokens", "0006_expiring_notified_watermark"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
