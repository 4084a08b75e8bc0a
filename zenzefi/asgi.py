"""ASGI entry point for uvicorn (and gunicorn with uvicorn workers).

A request whose Host is the proxy origin (`PROXY_ORIGIN`, browser mode; docs/proxy-origin.md) goes
to the proxy whatever its path: there every path is the upstream's own, and nothing of the platform
(pages, API, admin, static, health, metrics) is reachable. Otherwise:
`/health` and `/health/detailed` go to a raw ASGI app answering from the cached health result;
`/api/v1/proxy/…` goes to the proxy's lean ASGI app (`proxy.asgi.ProxyApp`), which runs none of
Django's middleware stack (each middleware hook is a thread hop under ASGI; ENGINEERING.md has the
measurements); every other path (pages, admin, REST API) goes to Django.

Django's pages and API run as WSGI on a fixed pool of DJANGO_THREADS threads per worker (a2wsgi), one
thread hop per request, like gunicorn's gthread workers inside the uvicorn worker: Django's own ASGI
handler hops threads for every sync middleware and runs each request on a thread of its own, which
measured at half the throughput of WSGI threads and, with persistent connections (CONN_MAX_AGE > 0),
leaked a PostgreSQL connection per thread until the server refused clients. A fixed pool bounds the
connections (docs/performance.md "Serving modes"). DJANGO_THREADS=0 restores Django's ASGI handler.

Lifespan events are answered here (neither handler speaks them): shutdown writes the proxy's pending
session counters and closes its upstream pool.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

if settings.DJANGO_THREADS > 0:
    from a2wsgi import WSGIMiddleware
    from django.core.wsgi import get_wsgi_application

    django_application = WSGIMiddleware(get_wsgi_application(), workers=settings.DJANGO_THREADS)
else:
    from django.core.asgi import get_asgi_application

    django_application = get_asgi_application()

from monitoring.views import HEALTH_PATHS, health_asgi  # noqa: E402
from proxy.asgi import PREFIX as PROXY_PREFIX  # noqa: E402  (needs the settings configured above)
from proxy.asgi import ProxyApp, is_proxy_origin  # noqa: E402
from zenzefi.request_id import RequestIdASGIMiddleware  # noqa: E402

proxy_application = ProxyApp()
# The request id (X-Request-ID) reaches the proxy's logs, audit entries and the upstream too.
proxy_entry = RequestIdASGIMiddleware(proxy_application)
browser_entry = RequestIdASGIMiddleware(proxy_application.browser)


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await proxy_application.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
    elif is_proxy_origin(scope):
        await browser_entry(scope, receive, send)
    elif scope["path"].startswith(PROXY_PREFIX):
        await proxy_entry(scope, receive, send)
    elif kind == "http" and scope["path"] in HEALTH_PATHS:
        await health_asgi(scope, receive, send)
    else:
        await django_application(scope, receive, send)
