"""`manage.py restore_db <file>`: replace the database's contents with a backup."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from backups.services import BackupError, backup_resolve, backup_restore


class Command(BaseCommand):
    help = (
        "Restore the database from a backup made by backup_db: a path, a file name in BACKUP_DIR, "
        "or 'latest'. Stop web, worker and beat first."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Backup file, a name inside BACKUP_DIR, or 'latest'.")
        parser.add_argument("--dir", help="Look for the file in this folder instead of BACKUP_DIR.")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="Do not ask."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        using = options["database"]
        try:
            path = backup_resolve(options["file"], Path(options["dir"]) if options["dir"] else None)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        target = connections[using].settings_dict["NAME"]
        if options["interactive"]:
            answer = input(
                f"This replaces every row of the database {target!s} with the contents of {path.name}.\n"
                "Type 'yes' to continue: "
            )
            if answer.strip() != "yes":
                raise CommandError("Restore cancelled.")
        try:
            backup_restore(path=path, using=using)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored {path}")
