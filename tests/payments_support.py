"""Helpers shared by the payments, referrals and exchange tests."""

from __future__ import annotations

import json
from decimal import Decimal

from payments.providers import SIGNATURE_HEADER, mock_signature

PURCHASE = "/api/v1/currency/purchase"
CALLBACK = "/api/v1/webhooks/payment"


def callback_body(provider_payment_id: str, status: str = "succeeded") -> bytes:
    return json.dumps({"provider_payment_id": provider_payment_id, "status": status}).encode()


def post_callback(client, body: bytes, *, signature: str | None = "auto", query: str = "", **extra):
    headers = dict(extra)
    if signature == "auto":
        headers[f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}"] = mock_signature(body)
    elif signature is not None:
        headers[f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}"] = signature
    return client.generic("POST", CALLBACK + query, body, content_type="application/json", **headers)


def pay(client, provider_payment_id: str, status: str = "succeeded"):
    return post_callback(client, callback_body(provider_payment_id, status))


def start_payment(user, amount: str | Decimal = "150.00", currency: str = "ZNC"):
    from payments.services import payment_create

    return payment_create(user=user, amount=Decimal(amount), currency=currency)
