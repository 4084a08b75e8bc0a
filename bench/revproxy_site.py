"""The benchmark's peer: django-revproxy's ProxyView as a one-file Django site (no middleware, no
database), served by gunicorn with sync workers. UPSTREAM is the upstream's base URL.

    UPSTREAM=http://127.0.0.1:19001 gunicorn -w 2 -k sync --chdir bench revproxy_site:application
"""

import os

from django.conf import settings
from django.urls import re_path

settings.configure(
    DEBUG=os.environ.get("BENCH_DEBUG") == "1",
    SECRET_KEY="bench-only-not-a-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=["revproxy"],
    REVPROXY={},
    DATABASES={},
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from revproxy.views import ProxyView  # noqa: E402

urlpatterns = [re_path(r"^api/v1/proxy/(?P<path>.*)$", ProxyView.as_view(upstream=os.environ["UPSTREAM"]))]
application = get_wsgi_application()
