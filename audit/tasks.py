"""Audit jobs (entry points only)."""

from celery import shared_task

from audit.services import audit_retention_purge


@shared_task(name="audit.tasks.purge_old_audit_entries", ignore_result=True)
def purge_old_audit_entries() -> int:
    return audit_retention_purge()
