"""Migration operations that are safe on large tables.

`AddIndexSafely` builds the index with `CREATE INDEX CONCURRENTLY` on PostgreSQL (no lock that
blocks writes; the migration must say `atomic = False`) and is a plain `AddIndex` elsewhere
(SQLite: the embedded default and the SQLite test run). The migration state is the same.
"""

from __future__ import annotations

from django.db.migrations.operations import AddIndex


def _concurrently():
    from django.contrib.postgres.operations import AddIndexConcurrently

    return AddIndexConcurrently


class AddIndexSafely(AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return _concurrently().database_forwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return _concurrently().database_backwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_backwards(app_label, schema_editor, from_state, to_state)

    def _ensure_not_in_transaction(self, schema_editor):
        _concurrently()._ensure_not_in_transaction(self, schema_editor)

    def describe(self):
        return f"{super().describe()} (concurrently on PostgreSQL)"
