"""The beat schedule of SPEC §10 in django-celery-beat's tables (editable in the admin under
"Periodic tasks"), read by beat's DatabaseScheduler.

- `schedule_ensure()` runs after every `migrate` (post_migrate, monitoring/apps.py): it creates the
  entries that do not exist yet, by name, and never touches an existing one, so an operator's edits
  in the admin (enabled, interval, crontab) survive migrations and restarts. After `migrate`, beat
  runs every job with no other command. To stop a job, disable it: a deleted entry comes back at the
  next `migrate`.
- `schedule_install()` (`manage.py install_schedule`, a repair tool, never run at start) puts every
  entry's task and timing back to the code's; whether an entry is enabled stays the operator's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.module_loading import import_string
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class Entry:
    name: str
    task: str  # the task function's dotted path; its registered Celery name is looked up
    every: int = 0
    period: str = IntervalSchedule.SECONDS
    crontab: dict | None = None  # minute/hour/... for time-of-day jobs


SCHEDULE: tuple[Entry, ...] = (
    Entry("expire tokens", "tokens.tasks.expire_tokens", 60),
    Entry("close idle sessions", "proxy.tasks.close_idle_sessions", 120),
    Entry("flush usage counters", "proxy.tasks.flush_proxy_counters", 30),
    Entry("health checks", "monitoring.tasks.run_health_checks", 50),
    Entry("token expiring soon", "notifications.tasks.notify_expiring_tokens", 6, IntervalSchedule.HOURS),
    Entry("low balance", "notifications.tasks.notify_low_balance", 12, IntervalSchedule.HOURS),
    Entry("audit retention", "audit.tasks.purge_old_audit_entries", crontab={"minute": "30", "hour": "4"}),
    Entry("gauges", "analytics.tasks.refresh_gauges", 30),
    # Safety nets (not in SPEC §10): queue again what a lost task left behind.
    Entry("webhook redelivery", "webhooks.tasks.requeue_overdue_deliveries", 5, IntervalSchedule.MINUTES),
    Entry("email redelivery", "notifications.tasks.requeue_stuck_emails", 10, IntervalSchedule.MINUTES),
    Entry("auto-renewal", "renewals.tasks.renew_expiring_tokens", 5, IntervalSchedule.MINUTES),
    Entry("backups", "backups.tasks.backup_database", crontab={"minute": "0", "hour": "3"}),
    Entry("expired JWT records", "accounts.tasks.flush_expired_jwts", crontab={"minute": "45", "hour": "4"}),
)


def task_name(path: str) -> str:
    """The name Celery registered for the task at `path` (a task may set its own `name=`);
    the path itself when the module cannot be imported here."""
    try:
        return import_string(path).name
    except (ImportError, AttributeError):
        return path


def _interval(every: int, period: str) -> IntervalSchedule:
    found = IntervalSchedule.objects.filter(every=every, period=period).order_by("pk").first()
    return found or IntervalSchedule.objects.create(every=every, period=period)


def _crontab(fields: dict) -> CrontabSchedule:
    values = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
    values.update(fields)
    found = CrontabSchedule.objects.filter(**values, timezone="UTC").order_by("pk").first()
    return found or CrontabSchedule.objects.create(**values, timezone="UTC")


@transaction.atomic
def schedule_ensure(entries: tuple[Entry, ...] = SCHEDULE) -> list[str]:
    """Create the entries missing by name; existing ones are left exactly as they are. Returns the
    names created."""
    names = [entry.name for entry in entries]
    existing = set(PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True))
    created = []
    for entry in entries:
        if entry.name in existing:
            continue
        interval = None if entry.crontab else _interval(entry.every, entry.period)
        crontab = _crontab(entry.crontab) if entry.crontab else None
        defaults = {"task": task_name(entry.task), "interval": interval, "crontab": crontab}
        _, made = PeriodicTask.objects.get_or_create(name=entry.name, defaults=defaults)
        if made:
            created.append(entry.name)
    return created


def ensure_after_migrate(sender, app_config=None, using="default", apps=None, verbosity=1, **kwargs):
    """post_migrate receiver: the schedule exists as soon as django-celery-beat's tables do."""
    if getattr(app_config, "label", None) != "django_celery_beat" or using != "default":
        return
    if apps is not None:
        try:
            apps.get_model("django_celery_beat", "PeriodicTask")
        except LookupError:  # migrated to a point before the table exists
            return
    created = schedule_ensure()
    if created and verbosity >= 1:
        print(f"Scheduled {len(created)} periodic job(s): {', '.join(created)}")


@transaction.atomic
def schedule_install(entries: tuple[Entry, ...] = SCHEDULE) -> dict[str, str]:
    """Create or update each entry by name. Returns {name: "created" | "updated" | "unchanged"}."""
    result: dict[str, str] = {}
    for entry in entries:
        registered = task_name(entry.task)
        interval = None if entry.crontab else _interval(entry.every, entry.period)
        crontab = _crontab(entry.crontab) if entry.crontab else None
        task = PeriodicTask.objects.select_for_update().filter(name=entry.name).first()
        if task is None:
            PeriodicTask.objects.create(name=entry.name, task=registered, interval=interval, crontab=crontab)
            result[entry.name] = "created"
            continue
        if (
            (task.task, task.interval_id, task.crontab_id)
            == (
                registered,
                interval.pk if interval else None,
                crontab.pk if crontab else None,
            )
            and task.solar_id is None
            and task.clocked_id is None
        ):
            result[entry.name] = "unchanged"
            continue
        task.task, task.interval, task.crontab = registered, interval, crontab
        task.solar = task.clocked = None
        task.save()
        result[entry.name] = "updated"
    return result
