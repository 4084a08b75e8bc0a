"""System checks for the proxy's settings (`manage.py check`, run at every start)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def proxy_origin_check(app_configs=None, **kwargs):
    """PROXY_ORIGIN must be an origin of its own: were it the site's host, every request to the
    site would go to the upstream (and the upstream's content would run with the site's origin)."""
    origin = settings.PROXY_ORIGIN
    if not origin:
        return [
            Warning(
                "PROXY_ORIGIN is empty: browser mode is off.",
                hint="Set PROXY_ORIGIN to a host name of its own (docs/proxy-origin.md).",
                id="proxy.W001",
            )
        ]
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return [Error(f"PROXY_ORIGIN must be scheme://host[:port], got {origin!r}.", id="proxy.E001")]
    from proxy.browser import origin_hosts

    site = {h.split(b":")[0] for h in origin_hosts(settings.BACKEND_URL.rstrip("/"))}
    ours = {h.split(b":")[0] for h in origin_hosts(origin.rstrip("/"))}
    if site & ours:
        return [
            Error(
                f"PROXY_ORIGIN ({origin}) shares its host name with BACKEND_URL ({settings.BACKEND_URL}).",
                hint="Use another host name (cookies are shared between ports of one host).",
                id="proxy.E002",
            )
        ]
    return []
