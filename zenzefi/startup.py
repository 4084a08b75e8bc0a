"""Startup work that settings.py must not do at import (issue 15): folders and the host lookup.

`prepare()` runs once per process from MonitoringConfig.ready() (django.setup(): manage.py, ASGI/WSGI,
the Celery worker and beat), before any database connection or broker use:

- the folder of the embedded SQLite database and the embedded (filesystem) broker's folders are
  created where they are used: only when that database/broker is configured;
- with ALLOWED_HOSTS_OWN_IPS, this host's own addresses are resolved and added to ALLOWED_HOSTS.
"""

import socket
from pathlib import Path

from django.conf import settings


def ensure_folders() -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and str(database["NAME"]) != ":memory:":
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def own_addresses() -> list[str]:
    """This host's IP addresses as ALLOWED_HOSTS entries (IPv6 in brackets); none if DNS fails."""
    try:
        ips = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        ips = set()
    return sorted(f"[{ip}]" if ":" in ip else ip for ip in ips)


def prepare() -> None:
    ensure_folders()
    if getattr(settings, "ALLOWED_HOSTS_OWN_IPS", False):
        extra = [host for host in own_addresses() if host not in settings.ALLOWED_HOSTS]
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, *extra]
