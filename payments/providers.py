"""Payment providers behind one interface (SPEC §7).

A provider can
- `create_payment(payment)`: register the payment with the provider → its id and checkout URL.
  Idempotent by the payment's `uid` (its idempotence key): calling it again for one payment gets
  the same provider payment. `payments.services` calls it outside any database transaction;
- `parse_callback(body, headers)`: verify a callback and say which payment it is about and
  what its status is *according to a trusted source* (a valid signature, or the provider's API);
- `fetch_status(provider_payment_id)`: ask the provider for a payment's current status.

Two providers ship:

- **mock** (while MOCK_PAYMENTS_ENABLED): the checkout is a local page with "pay" and "cancel";
  its callbacks to `POST /api/v1/webhooks/payment` are JSON
  `{"provider_payment_id": "mock_…", "status": "succeeded" | "canceled"}` signed with
  HMAC-SHA256 over the raw body with PAYMENT_WEBHOOK_SECRET, sent as
  `X-Payment-Signature: sha256=<hex digest>`.
- **yookassa**: YooKassa's HTTP API v3 (`POST /payments` with an `Idempotence-Key` header, HTTP
  Basic auth `shop_id:secret_key`, a redirect confirmation). YooKassa's notifications are *not
  signed*, so a notification is only a hint: the payment's status is fetched from the API
  (`GET /payments/{id}`) with our credentials, and only that answer is trusted. The
  notification URL to configure in YooKassa is `/api/v1/webhooks/payment?provider=yookassa`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache

import httpx
from django.conf import settings
from django.urls import reverse

from payments.models import Currency, Payment, PaymentStatus
from zenzefi.errors import ApplicationError, InvalidInput

SIGNATURE_HEADER = "X-Payment-Signature"


class TopupsUnavailable(ApplicationError):
    status_code = 503
    code = "topups_unavailable"
    default_detail = "Top-ups are unavailable right now."


class InvalidSignature(ApplicationError):
    status_code = 400
    code = "invalid_signature"
    default_detail = "The callback signature is missing or invalid."


class ProviderError(ApplicationError):
    status_code = 502
    code = "payment_provider_error"
    default_detail = "The payment provider could not be reached. Try again later."


@dataclass(frozen=True)
class ProviderPayment:
    provider_payment_id: str
    checkout_url: str


@dataclass(frozen=True)
class ProviderStatus:
    provider_payment_id: str
    status: str  # a PaymentStatus value
    amount: Decimal | None = None  # what the provider says was charged (None: not reported)
    currency: str | None = None


class PaymentProvider(ABC):
    name: str = ""
    currencies: tuple[str, ...] = ()  # currencies the provider can charge
    default_currency: str = Currency.ZNC

    def available(self) -> bool:
        return True

    def callback_payment_id(self, *, body: bytes, headers) -> str | None:
        """For a provider whose callbacks are only hints (unsigned): the payment id named in
        the callback, checked for format without any network call (400 if malformed); the
        caller then acts only if that payment is ours, asking `fetch_status`. None: the
        callback itself is trusted, see `parse_callback`."""
        return None

    @abstractmethod
    def create_payment(self, payment: Payment) -> ProviderPayment: ...

    @abstractmethod
    def parse_callback(self, *, body: bytes, headers) -> ProviderStatus: ...

    @abstractmethod
    def fetch_status(self, provider_payment_id: str) -> ProviderStatus: ...


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise InvalidInput("The callback body is not JSON.", code="invalid_callback") from None
    if not isinstance(data, dict):
        raise InvalidInput("The callback body must be a JSON object.", code="invalid_callback")
    return data


def return_url(payment: Payment) -> str:
    """Where the provider sends the customer after paying: PAYMENT_RETURN_URL if set, else this
    payment's return page (which checks the status with the provider at once)."""
    if settings.PAYMENT_RETURN_URL:
        return settings.PAYMENT_RETURN_URL
    return settings.SITE_URL.rstrip("/") + reverse("payments:return", args=[str(payment.uid)])


# --- mock --------------------------------------------------------------------------------------


def mock_signature(body: bytes, secret: str | None = None) -> str:
    """The `X-Payment-Signature` value of a mock callback body."""
    key = (secret if secret is not None else settings.PAYMENT_WEBHOOK_SECRET).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class MockProvider(PaymentProvider):
    name = "mock"
    currencies = tuple(Currency.values)
    default_currency = Currency.ZNC

    def available(self) -> bool:
        return bool(settings.MOCK_PAYMENTS_ENABLED)

    def create_payment(self, payment: Payment) -> ProviderPayment:
        # Idempotent like a real provider's create: one payment, one mock id (from its uid).
        provider_payment_id = f"mock_{payment.uid.hex}"
        url = settings.SITE_URL.rstrip("/") + reverse("payments:mock-checkout", args=[provider_payment_id])
        return ProviderPayment(provider_payment_id=provider_payment_id, checkout_url=url)

    def parse_callback(self, *, body: bytes, headers) -> ProviderStatus:
        given = headers.get(SIGNATURE_HEADER) or ""
        if not given or not hmac.compare_digest(given.strip(), mock_signature(body)):
            raise InvalidSignature()
        data = _json(body)
        provider_payment_id = data.get("provider_payment_id")
        status = data.get("status")
        if not isinstance(provider_payment_id, str) or not provider_payment_id:
            raise InvalidInput("provider_payment_id: required.", code="invalid_callback")
        if status not in (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED):
            raise InvalidInput("status: must be succeeded or canceled.", code="invalid_callback")
        return ProviderStatus(provider_payment_id=provider_payment_id, status=status)

    def fetch_status(self, provider_payment_id: str) -> ProviderStatus:
        # The mock provider has no remote side: our own row is its state.
        status = (
            Payment.objects.filter(provider=self.name, provider_payment_id=provider_payment_id)
            .values_list("status", flat=True)
            .first()
        )
        return ProviderStatus(provider_payment_id=provider_payment_id, status=status or PaymentStatus.PENDING)


# --- YooKassa ----------------------------------------------------------------------------------

YOOKASSA_STATUSES = {
    "pending": PaymentStatus.PENDING,
    "waiting_for_capture": PaymentStatus.PENDING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


# YooKassa payment ids: 36 characters, hex digits and dashes (UUID layout).
YOOKASSA_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class YooKassaProvider(PaymentProvider):
    name = "yookassa"
    currencies = (Currency.RUB, Currency.USD, Currency.EUR)

    @property
    def default_currency(self) -> str:  # type: ignore[override]
        return settings.YOOKASSA_CURRENCY

    def available(self) -> bool:
        return bool(settings.YOOKASSA_SHOP_ID and settings.YOOKASSA_SECRET_KEY)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=settings.YOOKASSA_API_URL.rstrip("/"),
            auth=(settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY),
            timeout=settings.YOOKASSA_TIMEOUT,
            trust_env=False,
            follow_redirects=False,
        )

    def _request(self, method: str, path: str, **kwargs) -> dict:
        try:
            with self._client() as client:
                response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"YooKassa is unreachable: {type(exc).__name__}.") from exc
        if response.status_code == 404:
            raise ProviderError("YooKassa does not know this payment.", code="provider_payment_unknown")
        if not response.is_success:
            raise ProviderError(f"YooKassa answered {response.status_code}.")
        try:
            return response.json()
        except ValueError:
            raise ProviderError("YooKassa answered with invalid JSON.") from None

    def create_payment(self, payment: Payment) -> ProviderPayment:
        body = {
            "amount": {"value": f"{payment.original_amount:.2f}", "currency": payment.currency},
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": return_url(payment)},
            "description": f"Zenzefi top-up {payment.amount:.2f} ZNC (#{payment.pk})",
            "metadata": {"payment_uid": str(payment.uid), "user_id": str(payment.user_id)},
        }
        # The Idempotence-Key makes a retried create return the same YooKassa payment.
        data = self._request("POST", "/payments", json=body, headers={"Idempotence-Key": str(payment.uid)})
        provider_payment_id = data.get("id")
        url = (data.get("confirmation") or {}).get("confirmation_url")
        if not provider_payment_id or not url:
            raise ProviderError("YooKassa's answer lacks the payment id or the confirmation URL.")
        return ProviderPayment(provider_payment_id=str(provider_payment_id), checkout_url=url)

    def callback_payment_id(self, *, body: bytes, headers) -> str:
        # Notifications are unsigned: read only the payment id from them (a YooKassa payment id
        # is a UUID-shaped string; anything else, e.g. "../x" or "a?b", never reaches a URL).
        data = _json(body)
        obj = data.get("object") if isinstance(data.get("object"), dict) else {}
        provider_payment_id = obj.get("id")
        if not isinstance(provider_payment_id, str) or not provider_payment_id:
            raise InvalidInput("object.id: required.", code="invalid_callback")
        if not YOOKASSA_ID.fullmatch(provider_payment_id):
            raise InvalidInput("object.id: not a YooKassa payment id.", code="invalid_callback")
        return provider_payment_id

    def parse_callback(self, *, body: bytes, headers) -> ProviderStatus:
        return self.fetch_status(self.callback_payment_id(body=body, headers=headers))

    def fetch_status(self, provider_payment_id: str) -> ProviderStatus:
        if not YOOKASSA_ID.fullmatch(provider_payment_id or ""):
            raise InvalidInput("Not a YooKassa payment id.", code="invalid_callback")
        data = self._request("GET", f"/payments/{provider_payment_id}")
        if data.get("id") != provider_payment_id:
            raise ProviderError("YooKassa answered about another payment.")
        status = YOOKASSA_STATUSES.get(data.get("status"), PaymentStatus.PENDING)
        amount = currency = None
        raw = data.get("amount") or {}
        try:
            amount = Decimal(str(raw.get("value"))) if raw.get("value") is not None else None
        except InvalidOperation:
            amount = None
        currency = raw.get("currency")
        if status == PaymentStatus.SUCCEEDED and data.get("paid") is False:
            status = PaymentStatus.PENDING
        return ProviderStatus(
            provider_payment_id=provider_payment_id, status=status, amount=amount, currency=currency
        )


PROVIDERS: dict[str, type[PaymentProvider]] = {"mock": MockProvider, "yookassa": YooKassaProvider}


@cache
def _instance(name: str) -> PaymentProvider:
    return PROVIDERS[name]()


def get_provider(name: str | None = None) -> PaymentProvider:
    name = (name or settings.PAYMENT_PROVIDER or "mock").strip().lower()
    if name not in PROVIDERS:
        raise InvalidInput(f"Unknown payment provider {name!r}.", code="unknown_provider")
    return _instance(name)
