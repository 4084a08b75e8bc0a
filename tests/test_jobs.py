import time
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client import REGISTRY

from analytics.tasks import refresh_gauges
from audit.models import AuditLog
from audit.services import audit_record
from audit.tasks import purge_old_audit_entries
from monitoring.schedule import SCHEDULE, schedule_install, task_name
from tests import jobs_support
from tests.factories import UserFactory, fund
from tokens import services as token_services
from tokens import validation
from tokens.models import AccessToken
from tokens.tasks import expire_tokens
from webhooks.services import webhook_endpoint_create
from zenzefi.celery import app as celery_app

# Shared fixtures (tests/jobs_support.py).
celery_eager = jobs_support.celery_eager
receiver = jobs_support.receiver

pytestmark = pytest.mark.django_db

EXPECTED = {
    "expire tokens": (60, "seconds"),
    "close idle sessions": (120, "seconds"),
    "flush usage counters": (30, "seconds"),
    "health checks": (50, "seconds"),
    "token expiring soon": (6, "hours"),
    "low balance": (12, "hours"),
    "gauges": (30, "seconds"),
}


def activated_token(user, *, hours=1, ago=timedelta(hours=2)):
    fund(user, "400")
    issued = token_services.token_purchase(user=user, duration_hours=hours)
    return token_services.token_activate(token=issued.token, now=timezone.now() - ago)


# --- The schedule -----------------------------------------------------------------------------


def test_schedule_repair_puts_timing_back_by_name():
    # The test database was migrated: every entry exists already (post_migrate, schedule_ensure).
    assert set(schedule_install().values()) == {"unchanged"}
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("interval", "crontab")}
    assert set(tasks) == {entry.name for entry in SCHEDULE} >= {*EXPECTED, "audit retention"}
    for name, (every, period) in EXPECTED.items():
        assert (tasks[name].interval.every, tasks[name].interval.period) == (every, period), name
    assert tasks["audit retention"].crontab.hour == "4" and tasks["audit retention"].interval is None
    # On an empty table it creates them, once.
    PeriodicTask.objects.all().delete()
    assert set(schedule_install().values()) == {"created"}
    assert PeriodicTask.objects.count() == len(SCHEDULE)
    # Someone changed an interval and disabled an entry: the repair tool puts the interval back, the
    # choice to disable stays.
    odd = IntervalSchedule.objects.create(every=999, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="gauges").update(interval=odd, enabled=False)
    result = schedule_install()
    assert result["gauges"] == "updated" and list(result.values()).count("updated") == 1
    gauges = PeriodicTask.objects.get(name="gauges")
    assert gauges.interval.every == 30 and gauges.enabled is False
    assert PeriodicTask.objects.count() == len(SCHEDULE)


SPEC_10_JOBS = {
    "expire tokens": "tokens.tasks.expire_tokens",
    "close idle sessions": "proxy.tasks.close_idle_sessions",
    "flush usage counters": "proxy.tasks.flush_proxy_counters",
    "health checks": "monitoring.tasks.run_health_checks",
    "token expiring soon": "notifications.tasks.notify_expiring_tokens",
    "low balance": "notifications.tasks.notify_low_balance",
    "auto-renewal": "renewals.tasks.renew_expiring_tokens",
    "audit retention": "audit.tasks.purge_old_audit_entries",
    "backups": "backups.tasks.backup_database",
    "gauges": "analytics.tasks.refresh_gauges",
}


def _assert_every_job_scheduled():
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("interval", "crontab")}
    assert set(tasks) == {entry.name for entry in SCHEDULE}
    for name, path in SPEC_10_JOBS.items():
        assert tasks[name].task == task_name(path) and tasks[name].enabled, name
    for name, (every, period) in EXPECTED.items():
        assert (tasks[name].interval.every, tasks[name].interval.period) == (every, period), name
    assert (tasks["backups"].crontab.hour, tasks["backups"].crontab.minute) == ("3", "0")
    assert tasks["auto-renewal"].interval.every == 5 and tasks["auto-renewal"].interval.period == "minutes"


def test_every_spec_10_job_is_in_the_schedule():
    assert {entry.name: entry.task for entry in SCHEDULE if entry.name in SPEC_10_JOBS} == SPEC_10_JOBS


def test_after_migrate_every_job_is_scheduled_with_no_other_command():
    # The test database was built by `migrate` alone.
    _assert_every_job_scheduled()
    # A fresh database: `migrate` (here with nothing left to apply) creates them again.
    PeriodicTask.objects.all().delete()
    call_command("migrate", verbosity=0)
    _assert_every_job_scheduled()


@pytest.mark.django_db(transaction=True)  # beat's scheduler closes the connection
def test_operator_edits_survive_what_runs_at_start(monkeypatch):
    from django_celery_beat.schedulers import DatabaseScheduler

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "start-password-1")
    monkeypatch.setenv("DEMO_USER_PASSWORD", "demo-password-1")
    odd = IntervalSchedule.objects.create(every=999, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="gauges").update(interval=odd)
    PeriodicTask.objects.filter(name="low balance").update(enabled=False)
    PeriodicTask.objects.filter(name="backups").delete()
    # What scripts/start and docker-compose.yml run at every start: migrate, bootstrap, and beat's
    # DatabaseScheduler loading the schedule.
    call_command("migrate", verbosity=0)
    call_command("bootstrap", verbosity=0)
    assert not celery_app.conf.beat_schedule  # nothing in settings for beat to write over the table
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    scheduler.setup_schedule()
    assert "gauges" in scheduler.schedule and "low balance" not in scheduler.schedule
    assert scheduler.schedule["gauges"].schedule.run_every.total_seconds() == 999
    gauges = PeriodicTask.objects.select_related("interval").get(name="gauges")
    assert (gauges.interval.every, gauges.enabled) == (999, True)
    assert PeriodicTask.objects.get(name="low balance").enabled is False
    # A deleted entry comes back (disable a job to stop it); nothing is duplicated.
    assert PeriodicTask.objects.filter(name="backups").count() == 1
    assert PeriodicTask.objects.filter(name__in=[e.name for e in SCHEDULE]).count() == len(SCHEDULE)


def test_every_scheduled_task_is_registered_with_celery():
    celery_app.loader.import_default_modules()
    for entry in SCHEDULE:
        assert task_name(entry.task) in celery_app.tasks, entry
    names = {entry.name: task_name(entry.task) for entry in SCHEDULE}
    from proxy.tasks import close_idle_sessions, flush_proxy_counters

    assert names["close idle sessions"] == close_idle_sessions.name
    assert names["flush usage counters"] == flush_proxy_counters.name


def test_install_schedule_command_is_repeatable(capsys):
    PeriodicTask.objects.all().delete()
    call_command("install_schedule")
    call_command("install_schedule")
    out = capsys.readouterr().out
    assert out.count("created") == out.count("unchanged") == len(SCHEDULE)
    assert PeriodicTask.objects.count() == len(SCHEDULE)


# --- Expire tokens ----------------------------------------------------------------------------


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_expire_tokens_job(user, receiver, celery_eager, django_capture_on_commit_callbacks):
    endpoint = webhook_endpoint_create(user=user, url=receiver.url, events=["token.expired"]).endpoint
    due = activated_token(user, hours=1, ago=timedelta(hours=2))
    running = activated_token(user, hours=24, ago=timedelta(hours=1))
    digest = due.digest
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_tokens.apply().get() == 1
    due.refresh_from_db()
    assert due.expired_at is not None
    assert AccessToken.objects.get(pk=running.pk).expired_at is None
    # The cache entry says expired (tombstone) for every process.
    from zenzefi.kv import get_kv

    assert get_kv().get(f"tokval:{digest}") == {"ok": 0, "r": "expired"}
    assert validation._load(digest)["r"] == validation.EXPIRED
    # token.expired reached the customer's receiver.
    assert [r.json["type"] for r in receiver.received] == ["token.expired"]
    assert receiver.received[0].json["data"]["token_id"] == due.pk
    assert endpoint.deliveries.count() == 1
    # Twice: nothing more to do, no second event.
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_tokens.apply().get() == 0
    assert len(receiver.received) == 1


def test_expire_tokens_with_nothing_due(user):
    activated_token(user, hours=24, ago=timedelta(hours=1))
    fund(user, "10")
    token_services.token_purchase(user=user, duration_hours=1)  # not activated: never expires
    assert expire_tokens.apply().get() == 0
    assert not AccessToken.objects.filter(expired_at__isnull=False).exists()


def test_expire_tokens_skips_revoked(user):
    token = activated_token(user, hours=1, ago=timedelta(minutes=30))
    token_services.token_revoke(token_id=token.pk, actor=user, owner=user)
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert expire_tokens.apply().get() == 0


# --- Audit retention --------------------------------------------------------------------------


@override_settings(AUDIT_RETENTION_DAYS=30)
def test_audit_retention_job(user):
    old = [audit_record(action="test.old", actor=user) for _ in range(3)]
    keep = audit_record(action="test.recent", actor=user)
    edge = audit_record(action="test.edge", actor=user)
    AuditLog.objects.filter(pk__in=[a.pk for a in old]).update(created_at=timezone.now() - timedelta(days=31))
    AuditLog.objects.filter(pk=edge.pk).update(created_at=timezone.now() - timedelta(days=29))
    before = AuditLog.objects.count()
    assert purge_old_audit_entries.apply().get() == 3
    assert AuditLog.objects.count() == before - 3
    assert AuditLog.objects.filter(pk__in=[keep.pk, edge.pk]).count() == 2
    assert purge_old_audit_entries.apply().get() == 0  # idempotent


def test_audit_retention_with_nothing_old(user):
    audit_record(action="test.recent", actor=user)
    assert purge_old_audit_entries.apply().get() == 0
    assert AuditLog.objects.filter(action="test.recent").exists()


def test_audit_retention_in_batches(user):
    from audit.services import audit_retention_purge

    rows = [audit_record(action="test.old", actor=user) for _ in range(7)]
    AuditLog.objects.filter(pk__in=[r.pk for r in rows]).update(
        created_at=timezone.now() - timedelta(days=400)
    )
    assert audit_retention_purge(batch_size=3) == 7


# --- Gauges -----------------------------------------------------------------------------------


def test_gauges_job(user, client):
    import secrets

    from proxy.models import ProxySession

    running = activated_token(user, hours=24, ago=timedelta(hours=1))
    activated_token(user, hours=1, ago=timedelta(hours=3))  # expired
    fund(user, "10")
    token_services.token_purchase(user=user, duration_hours=1)  # not activated
    UserFactory(is_active=False)
    now = timezone.now()
    for ended in (None, None, now):
        ProxySession.objects.create(
            key=secrets.token_hex(8),
            token=running,
            user=user,
            device_id="d",
            started_at=now,
            last_seen=now,
            ended_at=ended,
        )
    figures = refresh_gauges.apply().get()
    assert figures == {"active_tokens": 1, "active_proxy_sessions": 2, "users_total": 2, "users_active": 1}
    assert refresh_gauges.apply().get() == figures  # idempotent
    assert REGISTRY.get_sample_value("active_tokens_gauge") == 1
    assert REGISTRY.get_sample_value("registered_users", {"state": "all"}) == 2
    assert REGISTRY.get_sample_value("active_proxy_sessions") == 2
    metrics = client.get("/metrics").content.decode()
    assert "active_tokens_gauge 1.0" in metrics and 'registered_users{state="active"} 1.0' in metrics


def test_gauges_with_nothing_to_count():
    assert refresh_gauges.apply().get() == {
        "active_tokens": 0,
        "active_proxy_sessions": 0,
        "users_total": 0,
        "users_active": 0,
    }
    assert REGISTRY.get_sample_value("active_tokens_gauge") == 0


# --- A real round trip through the broker -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_queued_task_runs_on_a_worker_through_the_broker():
    """`.delay()` → the configured broker (Redis when REDIS_URL is set, else the file-system
    broker) → a real Celery worker (Celery's test worker, in a thread) → the job's effect."""
    from celery.contrib.testing.worker import start_worker

    user = UserFactory()
    token = activated_token(user, hours=1, ago=timedelta(hours=2))
    celery_app.loader.import_default_modules()
    assert not celery_app.conf.task_always_eager
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=15
    ):
        result = expire_tokens.delay()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if AccessToken.objects.filter(pk=token.pk, expired_at__isnull=False).exists():
                break
            time.sleep(0.2)
    assert AccessToken.objects.get(pk=token.pk).expired_at is not None, (
        f"the worker did not run task {result.id} via {celery_app.conf.broker_url.split('://')[0]}"
    )
