"""Expression statistics for the analytics' daily buckets of proxy sessions (PostgreSQL only).

Without them PostgreSQL estimates `date_trunc('day', started_at AT TIME ZONE 'UTC')` to have as
many distinct values as `started_at` (one per row), so it sorts every session of the period (170 000
for a month at 200 000 customers: an on-disk merge sort) instead of hashing them into ~30 days.
`CREATE STATISTICS` takes no lock that blocks writes; the ANALYZE (a sample) fills them now
rather than at the next automatic analyze of a large table."""

from django.db import migrations

DAY_EXPR = "date_trunc('day', started_at AT TIME ZONE 'UTC')"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE STATISTICS IF NOT EXISTS session_started_day_stats ON ({DAY_EXPR}) FROM proxy_proxysession"
    )
    schema_editor.execute("ANALYZE proxy_proxysession")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS session_started_day_stats")


class Migration(migrations.Migration):
    atomic = False  # ANALYZE of a large table outside one long transaction

    dependencies = [
        ("proxy", "0004_merge_20261201_1610"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
