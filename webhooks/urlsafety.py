"""SSRF guard for customer webhook URLs, applied at creation and again before every attempt.

Only http/https. Every address the host resolves to must be a public unicast address: loopback,
private, link-local (incl. 169.254.169.254 metadata), multicast, reserved, unspecified, shared
(CGNAT), and IPv6 forms embedding such an IPv4 address (IPv4-mapped, 6to4 2002::/16, Teredo
2001::/32, NAT64 64:ff9b::/96, IPv4-compatible ::/96) are refused, as is all of the local-use
NAT64 prefix 64:ff9b:1::/48. Hosts listed in WEBHOOK_ALLOWED_HOSTS
(hostnames or IP literals, for an operator's internal receiver and for tests) skip the address
check. At delivery the request goes to the address that was checked (the hostname is kept for
`Host` and TLS), so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from zenzefi.errors import InvalidInput


class UnsafeWebhookURL(InvalidInput):
    """`reason` (and `host`, `address`, `kind` where they apply) say why, for pages that show the
    refusal in the customer's language; the API answers with the English `detail` only."""

    code = "webhook_url_refused"
    default_detail = "This webhook URL is not allowed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        reason: str = "",
        host: str = "",
        address: str = "",
        kind: str = "",
    ):
        super().__init__(detail)
        self.reason, self.host, self.address, self.kind = reason, host, address, kind


@dataclass(frozen=True)
class CheckedURL:
    url: str  # what to connect to (the pinned address, or the URL itself for allowed hosts)
    host: str  # the original host name, for Host and TLS SNI
    host_header: str
    pinned: bool


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _allowed(host: str) -> bool:
    allowed = {_normalise_host(h) for h in settings.WEBHOOK_ALLOWED_HOSTS if h.strip()}
    return _normalise_host(host) in allowed


# IPv6 forms that carry an IPv4 address inside (RFC 3056 6to4, RFC 4380 Teredo, RFC 6052/8215
# NAT64, the deprecated IPv4-compatible ::a.b.c.d): a gateway on the way may deliver to that IPv4.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local use (RFC 8215): never a public target
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:
        server, client = ip.teredo
        found += [("Teredo", server), ("Teredo", client)]
    if ip in NAT64_WELL_KNOWN or ip in NAT64_LOCAL:
        found.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        found.append(("IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return found


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for attribute in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{attribute}"):
            return attribute.replace("_", "-")
    if not ip.is_global:
        return "not-global"
    return None


def address_refused(address: str) -> str | None:
    """Why this address may not be a webhook target, or None if it is a public unicast address.
    IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64, IPv4-compatible)
    are judged by the embedded address too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64_LOCAL:
            return "local-use NAT64"
        else:
            for form, embedded in _embedded_ipv4(ip):
                reason = _refused(embedded)
                if reason:
                    return f"{reason} ({form} of {embedded})"
    return _refused(ip)


def _split(url: str):
    if not isinstance(url, str) or len(url) > 2000:
        raise UnsafeWebhookURL("url: must be an http(s) URL of at most 2000 characters.", reason="too_long")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeWebhookURL("url: not a valid URL.", reason="invalid") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookURL("url: only http and https URLs are allowed.", reason="scheme")
    if not parts.hostname:
        raise UnsafeWebhookURL("url: a host is required.", reason="no_host")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("url: credentials in the URL are not allowed.", reason="credentials")
    return parts, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str) -> CheckedURL:
    """Validate and resolve `url`; raise `UnsafeWebhookURL` (400) when it must not be called."""
    parts, port = _split(url)
    host = parts.hostname
    host_header = parts.netloc.rsplit("@", 1)[-1]
    if _allowed(host):
        return CheckedURL(url=url.strip(), host=host, host_header=host_header, pinned=False)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookURL(
            f"url: the host {host!r} cannot be resolved.", reason="unresolvable", host=host
        ) from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeWebhookURL(
            f"url: the host {host!r} cannot be resolved.", reason="unresolvable", host=host
        )
    for address in addresses:
        reason = address_refused(address)
        if reason:
            raise UnsafeWebhookURL(
                f"url: {host!r} resolves to a {reason} address ({address}); webhooks must reach a "
                "public address.",
                reason="not_public",
                host=host,
                address=address,
                kind=reason,
            )
    pinned_host = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    netloc = f"{pinned_host}:{parts.port}" if parts.port else pinned_host
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return CheckedURL(url=pinned, host=host, host_header=host_header, pinned=True)


def validate_url(url: str) -> str:
    """The creation-time check: the cleaned URL, or `UnsafeWebhookURL`."""
    check_url(url)
    return url.strip()
