"""Webhook secrets and Standard-Webhooks signatures.

Secrets are derived, never stored: `whsec_` + base64 of HMAC-SHA256 keyed with
WEBHOOK_SIGNING_KEY (independent of SECRET_KEY) over the endpoint's uid and a random salt kept on the
row. The database alone therefore reveals no secret; changing WEBHOOK_SIGNING_KEY changes every
endpoint's secret (customers would have to re-create their endpoints), which is why it can be
kept apart from SECRET_KEY (required when DEBUG is off, issue 15).

Signature (https://www.standardwebhooks.com/): `webhook-signature: v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}" keyed with the base64-decoded secret>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from django.conf import settings
from django.utils.crypto import salted_hmac

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


def new_salt() -> str:
    return secrets.token_hex(16)


def secret_key_bytes(*, uid, salt: str) -> bytes:
    return salted_hmac(
        "zenzefi.webhooks.endpoint-secret",
        f"{uid}:{salt}",
        secret=settings.WEBHOOK_SIGNING_KEY,
        algorithm="sha256",
    ).digest()


def endpoint_secret(endpoint) -> str:
    """The endpoint's secret as shown to its owner (once, at creation)."""
    raw = secret_key_bytes(uid=endpoint.uid, salt=endpoint.secret_salt)
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(*, secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(*, secret: str | bytes, msg_id: str, body: bytes, timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify(*, secret: str, headers: dict, body: bytes, now: int | None = None) -> bool:
    """What a receiver does (reference implementation for customers and the admin)."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
