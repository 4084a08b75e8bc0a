"""`manage.py backup_db`: back up the database into BACKUP_DIR, then rotate old backups."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backups.services import BackupError, backup_create, backups_rotate


class Command(BaseCommand):
    help = "Back up the database (pg_dump / SQLite backup API) into BACKUP_DIR and rotate old backups."

    def add_arguments(self, parser):
        parser.add_argument("--dir", help="Write into this folder instead of BACKUP_DIR.")
        parser.add_argument("--no-rotate", action="store_true", help="Keep every older backup.")
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        directory = Path(options["dir"]) if options["dir"] else None
        try:
            path = backup_create(directory=directory, using=options["database"])
            deleted = [] if options["no_rotate"] else backups_rotate(directory=directory)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(path))
        for old in deleted:
            self.stderr.write(f"rotated out: {old.name}")
