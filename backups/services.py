"""Database backups: create, restore and rotate (SPEC §10 "backups", §17).

PostgreSQL is dumped with `pg_dump --format=custom` and restored with `pg_restore --clean`;
SQLite is copied page by page with the sqlite3 backup API (consistent while the platform runs,
WAL included). Files live in BACKUP_DIR, named `zenzefi-<UTC timestamp>.<pgdump|sqlite3>`, readable
by their owner only. The connection comes from `settings.DATABASES`; the password reaches the
PostgreSQL tools through the `PGPASSWORD` environment variable, never the command line.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connections

from backups.rotation import backups_to_keep
from zenzefi.kvkeys import LAST_BACKUP_KEY

logger = logging.getLogger("backups")

PG_KIND, SQLITE_KIND = "pgdump", "sqlite3"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
FILENAME_RE = re.compile(r"^zenzefi-(?P<stamp>\d{8}T\d{6}Z)\.(?P<kind>pgdump|sqlite3)$")
LAST_BACKUP_TTL = 40 * 24 * 3600


class BackupError(Exception):
    """A backup or restore could not be done; the message says why."""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    moment: datetime
    kind: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def backup_dir() -> Path:
    directory = Path(settings.BACKUP_DIR)
    return directory if directory.is_absolute() else Path(settings.BASE_DIR) / directory


def backup_filename(moment: datetime, kind: str) -> str:
    return f"zenzefi-{moment.astimezone(UTC).strftime(STAMP_FORMAT)}.{kind}"


def parse_backup_filename(name: str) -> tuple[datetime, str] | None:
    match = FILENAME_RE.match(name)
    if not match:
        return None
    moment = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    return moment, match["kind"]


def backups_list(directory: Path | None = None) -> list[BackupFile]:
    """The backups in `directory` (default BACKUP_DIR), newest first. Other files are ignored."""
    directory = directory or backup_dir()
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        parsed = parse_backup_filename(path.name)
        if parsed and path.is_file():
            found.append(BackupFile(path=path, moment=parsed[0], kind=parsed[1]))
    return sorted(found, key=lambda b: b.moment, reverse=True)


# --- database connection details -----------------------------------------------------------------


def _kind(using: str) -> str:
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return PG_KIND
    if vendor == "sqlite":
        return SQLITE_KIND
    raise BackupError(f"backups support PostgreSQL and SQLite, not {vendor}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BackupError(f"{name} was not found on PATH: install the PostgreSQL client (postgresql-client)")
    return path


def _pg_connection(using: str) -> tuple[list[str], dict[str, str]]:
    """Command-line arguments and environment for pg_dump/pg_restore: no password in the arguments."""
    db = connections[using].settings_dict
    args: list[str] = []
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    args += ["--dbname", str(db["NAME"])]
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    env.pop("PGPASSWORD", None)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    options = db.get("OPTIONS") or {}
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        if options.get(option):
            env[variable] = str(options[option])
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()[-2000:]
        raise BackupError(f"{Path(command[0]).name} failed (exit {result.returncode}): {message}")


def _sqlite_path(using: str) -> str:
    name = str(connections[using].settings_dict["NAME"])
    if not name or name == ":memory:" or "mode=memory" in name:
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return name


def _sqlite_copy(source: str, target: str) -> None:
    src = sqlite3.connect(source, timeout=20)
    try:
        dst = sqlite3.connect(target, timeout=20)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


# --- backup --------------------------------------------------------------------------------------


def backup_create(
    *, directory: Path | None = None, now: datetime | None = None, using: str = "default"
) -> Path:
    """Write a full backup of the database into `directory` (default BACKUP_DIR) and return its path."""
    kind = _kind(using)
    directory = directory or backup_dir()
    directory.mkdir(parents=True, exist_ok=True)
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    path = directory / backup_filename(moment, kind)
    if path.exists():
        raise BackupError(f"{path} already exists (one backup per second at most)")
    partial = path.with_name(path.name + ".partial")
    try:
        if kind == PG_KIND:
            args, env = _pg_connection(using)
            command = [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
            _run([*command, "--file", str(partial), *args], env)
        else:
            _sqlite_copy(_sqlite_path(using), str(partial))
        partial.chmod(0o600)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("backup written", extra={"backup_path": str(path), "backup_bytes": path.stat().st_size})
    _remember_last(path, moment)
    return path


def _remember_last(path: Path, moment: datetime) -> None:
    """Record the last good backup in the shared store (read by /metrics for the backup alert)."""
    try:
        from zenzefi.kv import get_kv

        get_kv().set(
            LAST_BACKUP_KEY,
            {"path": path.name, "timestamp": moment.timestamp(), "bytes": path.stat().st_size},
            LAST_BACKUP_TTL,
        )
    except Exception:  # the backup itself succeeded; a store outage must not fail it
        logger.warning("could not record the last backup in the shared store", exc_info=True)


# --- restore -------------------------------------------------------------------------------------


def backup_resolve(name: str, directory: Path | None = None) -> Path:
    """A path, a file name inside BACKUP_DIR, or `latest` (the newest backup there)."""
    directory = directory or backup_dir()
    if name == "latest":
        found = backups_list(directory)
        if not found:
            raise BackupError(f"no backups in {directory}")
        return found[0].path
    path = Path(name)
    if not path.exists() and not path.is_absolute() and (directory / name).exists():
        path = directory / name
    if not path.is_file():
        raise BackupError(f"backup file not found: {name}")
    return path


def _sqlite_check(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name} is not a SQLite database: {exc}") from exc
    if not result or result[0] != "ok":
        raise BackupError(f"{path.name} failed the SQLite integrity check: {result}")


def backup_restore(*, path: Path, using: str = "default") -> None:
    """Replace the database's contents with the backup at `path`.

    PostgreSQL: `pg_restore --clean --if-exists` in one transaction (all or nothing); objects that
    exist only in the live database (e.g. from a newer migration) are left alone. SQLite: the backup
    API copies the file over the live database page by page. Stop the web, worker and beat
    processes first: the restore replaces data under their feet.
    """
    kind = _kind(using)
    parsed = parse_backup_filename(path.name)
    file_kind = parsed[1] if parsed else path.suffix.lstrip(".")
    if file_kind != kind:
        raise BackupError(f"{path.name} is not a {kind} backup; the database is {connections[using].vendor}")
    connections[using].close()
    if kind == PG_KIND:
        args, env = _pg_connection(using)
        pg_restore = _tool("pg_restore")
        _run([pg_restore, "--list", str(path)], env)  # a readable archive, or stop before touching data
        command = [pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges"]
        _run([*command, "--single-transaction", "--exit-on-error", *args, str(path)], env)
    else:
        _sqlite_check(path)
        _sqlite_copy(str(path), _sqlite_path(using))
    logger.warning("database restored from backup", extra={"backup_path": str(path)})


# --- rotation ------------------------------------------------------------------------------------


def backups_rotate(*, directory: Path | None = None) -> list[Path]:
    """Delete the backups that rotation does not keep (BACKUP_KEEP_DAILY/WEEKLY/MONTHLY), each kind
    of backup on its own. Files that are not backups are never touched. Returns what was deleted."""
    found = backups_list(directory)
    deleted: list[Path] = []
    for kind in {b.kind for b in found}:
        of_kind = [b for b in found if b.kind == kind]
        keep = backups_to_keep(
            (b.moment for b in of_kind),
            daily=settings.BACKUP_KEEP_DAILY,
            weekly=settings.BACKUP_KEEP_WEEKLY,
            monthly=settings.BACKUP_KEEP_MONTHLY,
        )
        for backup in of_kind:
            if backup.moment not in keep:
                backup.path.unlink(missing_ok=True)
                deleted.append(backup.path)
    if deleted:
        logger.info("old backups deleted", extra={"deleted": [p.name for p in deleted]})
    return sorted(deleted)
