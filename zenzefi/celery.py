"""Celery application: broker from CELERY_BROKER_URL / REDIS_URL, else the file-system broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")

app = Celery("zenzefi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
