"""ASGI entry point for uvicorn (and gunicorn with uvicorn workers).

Every path goes to Django's ASGI handler for now; the proxy work routes
`/api/v1/proxy/` onto a lean path here that skips the full middleware stack.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")

django_application = get_asgi_application()


async def application(scope, receive, send):
    await django_application(scope, receive, send)
