"""Backups: rotation (a pure function, constructed dates), and a verified round trip on PostgreSQL
and on a file-backed SQLite database: back up, wipe, restore, and the ledger matches.

The round trips run the real management commands in subprocesses against a scratch database of
their own (never the test database), so they see committed data exactly as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections

from backups import services
from backups.rotation import backups_to_keep
from backups.services import BackupError, backup_filename, backups_list, backups_rotate

BASE_DIR = Path(settings.BASE_DIR)
IN_CI = bool(os.environ.get("CI"))


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def at(day: date | str, hour: int = 3, minute: int = 0) -> datetime:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


# --- rotation: the pure function ------------------------------------------------------------------


def test_rotation_of_daily_backups_keeps_7_daily_4_weekly_3_monthly():
    # One backup a day at 03:00 from 2026-06-01 to 2026-11-22 (a Sunday).
    first, last = date(2026, 6, 1), date(2026, 11, 22)
    moments = [at(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    kept = backups_to_keep(moments)
    expected_daily = {at(last - timedelta(days=n)) for n in range(7)}  # 16..22 Nov
    # Newest of each of the 4 most recent ISO weeks: Sundays 22, 15, 8, 1 Nov.
    expected_weekly = {at("2026-11-22"), at("2026-11-15"), at("2026-11-08"), at("2026-11-01")}
    # Newest of each of the 3 most recent months: 22 Nov, 31 Oct, 30 Sep.
    expected_monthly = {at("2026-11-22"), at("2026-10-31"), at("2026-09-30")}
    assert kept == expected_daily | expected_weekly | expected_monthly
    assert len(kept) == 7 + 3 + 2  # overlaps are kept once


def test_rotation_keeps_only_the_newest_backup_of_a_day():
    moments = [at("2026-11-22", 3), at("2026-11-22", 9), at("2026-11-22", 15, 30), at("2026-11-21", 3)]
    assert backups_to_keep(moments) == {at("2026-11-22", 15, 30), at("2026-11-21", 3)}


def test_rotation_after_backups_stopped_keeps_the_last_good_ones():
    # Nothing for 40 days: the 7 newest still count as "daily" (periods that have a backup).
    moments = [at(date(2026, 9, 1) + timedelta(days=n)) for n in range(20)]  # 1..20 Sep
    kept = backups_to_keep(moments)
    assert {at(date(2026, 9, 20) - timedelta(days=n)) for n in range(7)} <= kept
    assert at("2026-08-31") not in kept and max(moments) in kept


def test_rotation_with_few_backups_keeps_them_all():
    moments = [at("2026-11-20"), at("2026-11-21"), at("2026-11-22")]
    assert backups_to_keep(moments) == set(moments)
    assert backups_to_keep([]) == set()


def test_rotation_iso_weeks_across_new_year():
    # 2026-12-31 (Thu) and 2027-01-01 (Fri) are in the same ISO week 53 of 2026.
    moments = [at("2026-12-31"), at("2027-01-01"), at("2026-12-24")]
    kept = backups_to_keep(moments, daily=0, weekly=4, monthly=0)
    assert kept == {at("2027-01-01"), at("2026-12-24")}


def test_rotation_months_and_custom_counts():
    moments = [at("2026-09-15"), at("2026-09-30"), at("2026-10-01"), at("2026-11-02"), at("2026-07-04")]
    assert backups_to_keep(moments, daily=0, weekly=0, monthly=3) == {
        at("2026-11-02"),
        at("2026-10-01"),
        at("2026-09-30"),
    }
    assert backups_to_keep(moments, daily=1, weekly=0, monthly=0) == {at("2026-11-02")}
    with pytest.raises(ValueError):
        backups_to_keep(moments, daily=-1)


# --- rotation on files ------------------------------------------------------------------------------


def test_backups_rotate_deletes_only_unkept_backups_per_kind(tmp_path, settings):
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 2, 0, 0
    names = [backup_filename(at(date(2026, 11, 10) + timedelta(days=n)), "pgdump") for n in range(5)]
    names.append(backup_filename(at("2026-01-01"), "sqlite3"))  # another kind: judged on its own
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / "zenzefi-20200101T000000Z.pgdump.partial").write_bytes(b"unfinished")

    deleted = backups_rotate(directory=tmp_path)

    assert [p.name for p in deleted] == sorted(names[:3])
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == sorted([*names[3:], "notes.txt", "zenzefi-20200101T000000Z.pgdump.partial"])
    assert [b.path.name for b in backups_list(tmp_path)] == [names[4], names[3], names[5]]


def test_backup_filenames_carry_a_utc_timestamp():
    moment = datetime(2026, 11, 22, 6, 30, 5, tzinfo=UTC)
    name = backup_filename(moment, "pgdump")
    assert name == "zenzefi-20261122T063005Z.pgdump"
    assert services.parse_backup_filename(name) == (moment, "pgdump")
    assert services.parse_backup_filename("zenzefi-2026.pgdump") is None


# --- safety -----------------------------------------------------------------------------------------


def test_postgres_password_goes_through_the_environment_never_the_command_line(monkeypatch):
    db = connections["default"].settings_dict
    for key, value in {"HOST": "db.internal", "PORT": "5433", "USER": "zz", "NAME": "zenzefi"}.items():
        monkeypatch.setitem(db, key, value)
    monkeypatch.setitem(db, "PASSWORD", "s3cr3t-Pa55")
    monkeypatch.setenv("PGPASSWORD", "stale")
    args, env = services._pg_connection("default")
    assert "s3cr3t-Pa55" not in " ".join(args)
    assert args == ["--host", "db.internal", "--port", "5433", "--username", "zz", "--dbname", "zenzefi"]
    assert env["PGPASSWORD"] == "s3cr3t-Pa55"
    monkeypatch.setitem(db, "PASSWORD", "")
    assert "PGPASSWORD" not in services._pg_connection("default")[1]


@pytest.mark.django_db
def test_restore_refuses_a_backup_of_the_other_kind_and_missing_files(tmp_path):
    other = "sqlite3" if connection.vendor == "postgresql" else "pgdump"
    wrong = tmp_path / backup_filename(at("2026-11-01"), other)
    wrong.write_bytes(b"not for this database")
    with pytest.raises(BackupError, match="is not a"):
        services.backup_restore(path=wrong)
    with pytest.raises(CommandError, match="not found"):
        call_command("restore_db", str(tmp_path / "nope.pgdump"), "--noinput")
    with pytest.raises(CommandError, match="no backups"):
        call_command("restore_db", "latest", "--noinput", "--dir", str(tmp_path / "empty"))


@pytest.mark.django_db
def test_the_daily_backup_job_is_scheduled_at_0300_utc():
    from django_celery_beat.models import PeriodicTask

    from monitoring.schedule import schedule_install
    from zenzefi.celery import app

    schedule_install()
    task = PeriodicTask.objects.select_related("crontab").get(task="backups.tasks.backup_database")
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "3", "UTC")
    assert task.interval is None and task.enabled
    app.loader.import_default_modules()
    assert app.tasks["backups.tasks.backup_database"].acks_late is True


# --- verified round trips ---------------------------------------------------------------------------

SEED = """
from decimal import Decimal
from accounts.models import User
from currency.models import TransactionType
from currency.services import balance_change
from tokens.services import token_purchase, token_revoke

for n in range(3):
    user = User.objects.create_user(
        username=f"backup{n}", email=f"backup{n}@example.com", password="x-Long-pass-1"
    )
    balance_change(user=user, amount=Decimal("150.25") + n, transaction_type=TransactionType.DEPOSIT)
    bought = [token_purchase(user=user, duration_hours=h).token for h in (1, 24, 12)]
    token_revoke(token_id=bought[1].pk, actor=user, owner=user)
    balance_change(user=user, amount=Decimal("-3.10"), transaction_type=TransactionType.ADJUSTMENT)
"""

FINGERPRINT = """
import json
from decimal import Decimal
from django.db.models import Sum
from accounts.models import User
from audit.models import AuditLog
from currency.models import Transaction
from tokens.models import AccessToken

def money(value):
    return str(Decimal(value or 0).quantize(Decimal("0.01")))

users = {
    u.username: {
        "balance": str(u.balance),
        "ledger_sum": money(Transaction.objects.filter(user=u).aggregate(s=Sum("amount"))["s"]),
        "rows": Transaction.objects.filter(user=u).count(),
    }
    for u in User.objects.order_by("username")
}
print(json.dumps({
    "users": users,
    "transactions": Transaction.objects.count(),
    "ledger_total": money(Transaction.objects.aggregate(s=Sum("amount"))["s"]),
    "tokens": AccessToken.objects.count(),
    "revoked": AccessToken.objects.filter(revoked_at__isnull=False).count(),
    "audit": AuditLog.objects.count(),
}))
"""


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args[:1])} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def _fingerprint(env: dict[str, str]) -> dict:
    return json.loads(_manage(env, "shell", "-c", FINGERPRINT).splitlines()[-1])


def _round_trip(database_url: str, tmp_path: Path, backup_suffix: str) -> None:
    backup_dir = tmp_path / "backups"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "CELERY_BROKER_URL", "PYTEST_CURRENT_TEST"}
    }
    env.update(
        DATABASE_URL=database_url,
        BACKUP_DIR=str(backup_dir),
        ZENZEFI_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="backup-round-trip-secret-key-0123456789",
        DEBUG="false",
        LOG_FORMAT="plain",
        CELERY_TASK_ALWAYS_EAGER="true",
        MOCK_PAYMENTS_ENABLED="true",
    )
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "shell", "-c", SEED)
    before = _fingerprint(env)
    assert before["transactions"] == 3 * 6 and before["revoked"] == 3
    for figures in before["users"].values():
        assert figures["balance"] == figures["ledger_sum"]

    first = Path(_manage(env, "backup_db").splitlines()[-1])
    assert first.parent == backup_dir and first.name.endswith(backup_suffix)
    assert first.stat().st_size > 0 and (first.stat().st_mode & 0o777) == 0o600
    # One backup per second: the daily job runs on a fake clock one second after the first
    # backup (same day), so its file gets a later name without waiting for the wall clock.
    later = services.parse_backup_filename(first.name)[0] + timedelta(seconds=1)
    task_result = _manage(
        env,
        "shell",
        "-c",
        "import json, time_machine; from backups.tasks import backup_database\n"
        f"with time_machine.travel({later.timestamp()!r}, tick=False):\n"
        "    print(json.dumps(backup_database()))",
    )
    task = json.loads(task_result.splitlines()[-1])
    assert Path(task["path"]).name == backup_filename(later, backup_suffix[1:])
    assert task["deleted"] == [first.name]  # the same day's older backup is rotated out
    assert [b.path for b in backups_list(backup_dir)] == [Path(task["path"])]

    _manage(env, "flush", "--noinput")
    wiped = _fingerprint(env)
    assert wiped["transactions"] == 0 and wiped["users"] == {} and wiped["tokens"] == 0

    out = _manage(env, "restore_db", "latest", "--noinput")
    assert Path(task["path"]).name in out
    after = _fingerprint(env)
    assert after == before


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"


def test_round_trip_on_sqlite(tmp_path, sqlite_url):
    _round_trip(sqlite_url, tmp_path, ".sqlite3")


def _postgres_admin_url() -> tuple[dict, str]:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        parts = {k: db.get(k) or "" for k in ("USER", "PASSWORD", "HOST", "PORT")}
    else:  # the SQLite run still checks PostgreSQL when the local server is there
        parts = {"USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1", "PORT": "5432"}
    auth = parts["USER"] + (f":{parts['PASSWORD']}" if parts["PASSWORD"] else "")
    host = parts["HOST"] or "127.0.0.1"
    return parts, f"postgres://{auth}@{host}:{parts['PORT'] or 5432}"


@pytest.fixture
def scratch_postgres():
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        _unavailable("pg_dump/pg_restore not installed (Debian package postgresql-client)")
    import psycopg

    _, base = _postgres_admin_url()
    try:
        admin = psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable(f"no PostgreSQL server to test against: {exc}")
    name = f"zz_backup_rt_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_round_trip_on_postgresql(tmp_path, scratch_postgres):
    _round_trip(scratch_postgres, tmp_path, ".pgdump")
