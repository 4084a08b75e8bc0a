"""WSGI entry point (admin, pages and the REST API; the proxy needs ASGI: see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")

application = get_wsgi_application()
