"""The daily backup job (SPEC §10: 03:00, installed by `manage.py install_schedule`)."""

from celery import shared_task

from backups.services import backup_create, backups_rotate


@shared_task(name="backups.tasks.backup_database", ignore_result=True, acks_late=True)
def backup_database() -> dict:
    """Back up the database and rotate. Safe to run twice: a second backup of the same day is
    rotated out by the next run (the newest of each day is kept)."""
    path = backup_create()
    deleted = backups_rotate()
    return {"path": str(path), "deleted": [p.name for p in deleted]}
