"""Top-ups through a payment provider (SPEC §7): create, complete exactly once, cancel, callbacks.

Exactly once: completing locks the Payment row and moves it pending → succeeded with a
conditional UPDATE; the DEPOSIT (and the referral rule) is written in that same transaction
through `payments.deposits.deposit_credit`. However often, and however concurrently, a
callback for a payment arrives, one caller wins the UPDATE and credits; the others see
"already succeeded" and credit nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, client_ip, request_origin
from currency.services import validate_topup_amount
from idempotency.services import Claim
from payments.deposits import deposit_credit
from payments.exchange import convert_from_znc, convert_to_znc
from payments.metrics import payment_callbacks_rejected_total
from payments.models import Payment, PaymentStatus
from payments.providers import (
    InvalidSignature,
    PaymentProvider,
    ProviderError,
    ProviderStatus,
    TopupsUnavailable,
    get_provider,
)
from zenzefi.errors import Conflict, InvalidInput, NotFound
from zenzefi.kv import get_kv
from zenzefi.kvkeys import payment_callback_audit_key

logger = logging.getLogger(__name__)


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    default_detail = "Payment not found."


@dataclass(frozen=True)
class Completion:
    payment: Payment
    credited: bool  # True only for the one call that moved it to succeeded


# --- create --------------------------------------------------------------------------------------


def payment_create(
    *,
    user: User,
    amount: Decimal,
    currency: str | None = None,
    provider: str | None = None,
    request=None,
    claim: Claim | None = None,
) -> Payment:
    """A pending payment of `amount` `currency` (ZNC by default) and the provider's checkout URL.

    The ZNC amount (converted with Decimal at the current rate, half-up to 0.01) must be within
    TOPUP_MIN_AMOUNT..TOPUP_MAX_AMOUNT. A provider that cannot charge the asked currency charges
    its own one at the current rate (e.g. YooKassa charges RUB for a top-up asked in ZNC).

    In three steps, the provider call outside any transaction (`payment_register`): commit the
    pending Payment (its `uid` is the provider's idempotence key), call the provider, record its
    answer in a short transaction. Called with an idempotency `claim` (an `Idempotency-Key` or a
    page nonce), the pending payment is noted on the claim in the same commit, so a retry with the
    same key resumes that payment (the same provider payment) instead of creating another one."""
    backend = get_provider(provider)
    if not backend.available():
        raise TopupsUnavailable()
    payment = _claimed_payment(user=user, claim=claim)
    if payment is None:
        conversion = convert_to_znc(amount=amount, currency=currency or "ZNC")
        validate_topup_amount(conversion.znc_amount)
        if conversion.currency not in backend.currencies:
            conversion = convert_from_znc(znc_amount=conversion.znc_amount, currency=backend.default_currency)
        with transaction.atomic():
            payment = Payment.objects.create(
                user=user,
                provider=backend.name,
                amount=conversion.znc_amount,
                currency=conversion.currency,
                original_amount=conversion.original_amount,
                exchange_rate=conversion.rate,
            )
            if claim is not None:
                claim.note({"payment": payment.pk})
    return payment_register(payment=payment, request=request, resumable=claim is not None)


def _claimed_payment(*, user: User, claim: Claim | None) -> Payment | None:
    """The payment an earlier attempt with this idempotency claim committed (to resume), if any."""
    payment_id = (claim.reference or {}).get("payment") if claim is not None else None
    if not isinstance(payment_id, int):
        return None
    return Payment.objects.filter(pk=payment_id, user=user).first()


def payment_register(*, payment: Payment, request=None, resumable: bool = False) -> Payment:
    """Register a committed pending payment with its provider and record the answer.

    Runs outside any transaction: the provider call (YooKassa: up to YOOKASSA_TIMEOUT) holds no
    row lock and no open transaction. The provider's idempotence key is the payment's `uid`, so
    calling this again for the same payment (a retry, a resumed crash) gets the same provider
    payment, never a second one. A registered or finished payment is returned as it is.

    A provider error credits nothing and is raised (502 `payment_provider_error`). The payment
    stays pending, unregistered, when `resumable` (a retry with the same idempotency key resumes
    it); otherwise nothing can resume it and it is canceled (`payment.canceled`, source
    `provider_error`)."""
    if payment.status != PaymentStatus.PENDING or payment.provider_payment_id:
        return payment
    backend = get_provider(payment.provider)
    try:
        created = backend.create_payment(payment)
    except Exception as exc:
        _provider_failed(payment=payment, exc=exc, resumable=resumable, request=request)
        raise
    with transaction.atomic():
        recorded = Payment.objects.filter(
            pk=payment.pk, status=PaymentStatus.PENDING, provider_payment_id=""
        ).update(provider_payment_id=created.provider_payment_id, checkout_url=created.checkout_url)
        if recorded:
            audit_record(
                action="payment.create",
                actor=payment.user,
                resource_type="payment",
                resource_id=payment.pk,
                details={
                    "provider": backend.name,
                    "provider_payment_id": created.provider_payment_id,
                    "amount": str(payment.amount),
                    "currency": payment.currency,
                    "original_amount": str(payment.original_amount),
                    "exchange_rate": str(payment.exchange_rate),
                },
                **request_origin(request),
            )
    payment.refresh_from_db()
    return payment


def _provider_failed(*, payment: Payment, exc: Exception, resumable: bool, request=None) -> None:
    code = getattr(exc, "code", type(exc).__name__)
    logger.warning("payment %s: the provider %s failed to create it (%s)", payment.pk, payment.provider, code)
    if resumable:
        audit_record(
            action="payment.provider_error",
            actor=payment.user,
            resource_type="payment",
            resource_id=payment.pk,
            details={"provider": payment.provider, "reason": code, "outcome": "pending_resumable"},
            **request_origin(request),
        )
        return
    payment_cancel(payment_id=payment.pk, source="provider_error", actor=payment.user, request=request)


# --- complete / cancel ---------------------------------------------------------------------------


def payment_complete(
    *, payment_id: int, source: str, actor: User | None = None, request=None, details: dict | None = None
) -> Completion:
    """Move a pending payment to succeeded and credit its ZNC amount, exactly once.

    Any other state is left alone (`credited=False`): a replayed or concurrent callback is a
    no-op. The audit entry `payment.succeeded` and the email/webhook ride on the same commit."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).filter(pk=payment_id).first()
        if payment is None:
            raise PaymentNotFound()
        if payment.status != PaymentStatus.PENDING:
            return Completion(payment=payment, credited=False)
        now = timezone.now()
        # Conditional even under the row lock: without row locks (SQLite) only one wins too.
        won = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.SUCCEEDED, completed_at=now
        )
        if not won:  # pragma: no cover - only without row locks
            payment.refresh_from_db()
            return Completion(payment=payment, credited=False)
        deposit = deposit_credit(
            user=payment.user,
            amount=payment.amount,
            description=f"Top-up via {payment.provider} (payment #{payment.pk})",
            reference=f"payment:{payment.pk}",
            actor=actor,
            request=request,
            audit_details={
                "provider": payment.provider,
                "payment_id": payment.pk,
                "currency": payment.currency,
                "original_amount": str(payment.original_amount),
                "exchange_rate": str(payment.exchange_rate),
            },
        )
        Payment.objects.filter(pk=payment.pk).update(deposit=deposit)
        payment.refresh_from_db()
        audit_record(
            action="payment.succeeded",
            actor=actor or payment.user,
            resource_type="payment",
            resource_id=payment.pk,
            details={
                "source": source,
                "provider": payment.provider,
                "provider_payment_id": payment.provider_payment_id,
                "amount": str(payment.amount),
                "transaction_id": deposit.pk,
                **(details or {}),
            },
            **request_origin(request),
        )
        _notify_succeeded(payment=payment, balance=deposit.balance_after)
        return Completion(payment=payment, credited=True)


def payment_cancel(
    *, payment_id: int, source: str, actor: User | None = None, request=None
) -> tuple[Payment, bool]:
    """pending → canceled (nothing credited); any other state is left alone. Returns the payment
    and whether this call canceled it."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).filter(pk=payment_id).first()
        if payment is None:
            raise PaymentNotFound()
        changed = bool(
            Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
                status=PaymentStatus.CANCELED, completed_at=timezone.now()
            )
        )
        if changed:
            audit_record(
                action="payment.canceled",
                actor=actor or payment.user,
                resource_type="payment",
                resource_id=payment.pk,
                details={"source": source, "provider": payment.provider},
                **request_origin(request),
            )
        payment.refresh_from_db()
        return payment, changed


def _notify_succeeded(*, payment: Payment, balance: Decimal) -> None:
    from notifications.models import NotificationKind
    from notifications.services import notification_create

    context = {
        "payment_id": payment.pk,
        "amount": f"{payment.amount:.2f}",
        "currency": payment.currency,
        "original_amount": f"{payment.original_amount:.2f}",
        "balance": f"{balance:.2f}",
        "completed_at": payment.completed_at.isoformat() if payment.completed_at else None,
    }
    notification_create(
        user=payment.user,
        kind=NotificationKind.PAYMENT_RECEIVED,
        context=context,
        dedupe_key=f"payment_received:payment:{payment.pk}",
        webhook_event="payment.succeeded",
        webhook_data={**context, "provider": payment.provider, "exchange_rate": str(payment.exchange_rate)},
    )


def _apply(
    *, payment: Payment, status: ProviderStatus, source: str, actor: User | None = None, request=None
) -> str:
    """Apply a trusted provider status to our payment; returns the outcome for the audit."""
    if status.status == PaymentStatus.SUCCEEDED:
        if status.amount is not None and (
            status.amount != payment.original_amount
            or (status.currency or payment.currency) != payment.currency
        ):
            audit_record(
                action="payment.amount_mismatch",
                resource_type="payment",
                resource_id=payment.pk,
                details={
                    "expected": f"{payment.original_amount:.2f} {payment.currency}",
                    "reported": f"{status.amount} {status.currency}",
                },
                **request_origin(request),
                suspicious=True,
            )
            raise InvalidInput("The paid amount does not match the payment.", code="amount_mismatch")
        done = payment_complete(payment_id=payment.pk, source=source, actor=actor, request=request)
        return "credited" if done.credited else f"already_{done.payment.status}"
    if status.status == PaymentStatus.CANCELED:
        after, changed = payment_cancel(payment_id=payment.pk, source=source, actor=actor, request=request)
        return "canceled" if changed else f"already_{after.status}"
    return "pending"


# --- callbacks -----------------------------------------------------------------------------------


def payment_callback_rejected(
    *,
    provider: str,
    reason: str,
    request=None,
    suspicious: bool = True,
    action: str = "payment.callback_rejected",
    details: dict | None = None,
) -> None:
    """Count every refused callback (`payment_callbacks_rejected_total{provider,reason}`) and
    audit at most one per client IP and minute, so a flood of forged callbacks cannot flood the
    audit log (issue 11 item 7)."""
    payment_callbacks_rejected_total.labels(provider=provider, reason=reason).inc()
    ip = client_ip(request) or "-"
    minute = int(time.time() // 60)
    # "Once per key and window" markers live in the shared kv, like the proxy's and the throttle's.
    if not get_kv().set(payment_callback_audit_key(ip, minute), 1, 70, nx=True):
        return
    audit_record(
        action=action,
        resource_type="payment",
        details={"provider": provider, "reason": reason, **(details or {})},
        **request_origin(request),
        suspicious=suspicious,
    )


def payment_callback_process(
    *, provider: str | None, body: bytes, headers, request=None
) -> tuple[Payment, str]:
    """Verify a provider callback and apply it. A bad signature or payment id is a 400, an
    unknown payment or a provider that is off a 404; none of them credits anything or calls the
    provider, and they are audited at most once per IP and minute (all counted). A callback
    about one of our payments is audited (`payment.callback`) with its outcome."""
    backend: PaymentProvider = get_provider(provider or "mock")
    if not backend.available():
        # Switched off (mock: MOCK_PAYMENTS_ENABLED) or not configured (YooKassa credentials):
        # its callbacks do not exist, and nothing is sent anywhere.
        payment_callback_rejected(
            provider=backend.name, reason="provider_disabled", request=request, suspicious=False
        )
        if backend.name == "mock":
            raise NotFound("Mock payments are disabled.", code="mock_payments_disabled")
        raise NotFound("This payment provider is not configured.", code="provider_not_configured")
    try:
        # Without any network call: a valid signature (mock) or a well-formed id (YooKassa).
        hinted_id = backend.callback_payment_id(body=body, headers=headers)
        if hinted_id is not None:
            payment = Payment.objects.filter(provider=backend.name, provider_payment_id=hinted_id).first()
            if payment is None:
                payment_callback_rejected(
                    provider=backend.name,
                    reason="unknown_payment",
                    request=request,
                    action="payment.callback",
                    details={"provider_payment_id": hinted_id, "outcome": "unknown_payment"},
                )
                raise PaymentNotFound()
            status = backend.fetch_status(hinted_id)  # the provider's API is the trusted source
        else:
            status = backend.parse_callback(body=body, headers=headers)
    except InvalidSignature:
        payment_callback_rejected(
            provider=backend.name,
            reason="invalid_signature",
            request=request,
            details={"bytes": len(body or b"")},
        )
        raise
    except InvalidInput as exc:
        payment_callback_rejected(provider=backend.name, reason=exc.code, request=request)
        raise
    except ProviderError as exc:
        audit_record(
            action="payment.callback_rejected",
            resource_type="payment",
            details={"provider": backend.name, "reason": exc.code},
            **request_origin(request),
        )
        raise
    payment = Payment.objects.filter(
        provider=backend.name, provider_payment_id=status.provider_payment_id
    ).first()
    if payment is None:
        payment_callback_rejected(
            provider=backend.name,
            reason="unknown_payment",
            request=request,
            action="payment.callback",
            details={
                "provider_payment_id": status.provider_payment_id,
                "status": status.status,
                "outcome": "unknown_payment",
            },
        )
        raise PaymentNotFound()
    outcome = _apply(payment=payment, status=status, source="callback", request=request)
    audit_record(
        action="payment.callback",
        resource_type="payment",
        resource_id=payment.pk,
        details={
            "provider": backend.name,
            "provider_payment_id": payment.provider_payment_id,
            "status": status.status,
            "outcome": outcome,
        },
        **request_origin(request),
    )
    payment.refresh_from_db()
    return payment, outcome


def payment_refresh(*, payment: Payment, request=None) -> Payment:
    """Ask the provider for the payment's status and apply it (e.g. when the customer returns
    from a real provider's checkout before its notification arrived)."""
    if payment.status != PaymentStatus.PENDING or not payment.provider_payment_id:
        return payment
    status = get_provider(payment.provider).fetch_status(payment.provider_payment_id)
    _apply(payment=payment, status=status, source="status_check", request=request)
    payment.refresh_from_db()
    return payment


# --- the mock provider's checkout and the staff simulation ---------------------------------------


def mock_payment_for(*, user: User, provider_payment_id: str) -> Payment:
    """The caller's pending-or-finished mock payment (404 for anyone else's or an unknown one)."""
    payment = Payment.objects.filter(
        provider="mock", provider_payment_id=provider_payment_id, user=user
    ).first()
    if payment is None:
        raise PaymentNotFound()
    return payment


def mock_checkout_submit(*, user: User, provider_payment_id: str, pay: bool, request=None) -> Completion:
    """The mock checkout page's "pay" / "cancel" (only while MOCK_PAYMENTS_ENABLED). Audited as a
    callback of the mock provider; "pay" credits once however often it is submitted."""
    if not get_provider("mock").available():
        raise TopupsUnavailable()
    payment = mock_payment_for(user=user, provider_payment_id=provider_payment_id)
    if pay:
        outcome_status = ProviderStatus(
            provider_payment_id=provider_payment_id, status=PaymentStatus.SUCCEEDED
        )
    else:
        outcome_status = ProviderStatus(
            provider_payment_id=provider_payment_id, status=PaymentStatus.CANCELED
        )
    with transaction.atomic():
        outcome = _apply(
            payment=payment, status=outcome_status, source="mock_checkout", actor=user, request=request
        )
        audit_record(
            action="payment.callback",
            actor=user,
            resource_type="payment",
            resource_id=payment.pk,
            details={
                "provider": "mock",
                "provider_payment_id": provider_payment_id,
                "status": outcome_status.status,
                "outcome": outcome,
                "via": "checkout_page",
            },
            **request_origin(request),
        )
    payment.refresh_from_db()
    return Completion(payment=payment, credited=outcome == "credited")


def payment_simulate(*, payment_id: int, actor: User, request=None) -> Payment:
    """Staff: complete a pending mock payment (as if the customer paid)."""
    if not get_provider("mock").available():
        raise NotFound("Mock payments are disabled.", code="mock_payments_disabled")
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise PaymentNotFound()
    if payment.provider != "mock":
        raise InvalidInput("Only mock payments can be simulated.", code="not_mock_payment")
    done = payment_complete(payment_id=payment.pk, source="staff_simulation", actor=actor, request=request)
    if not done.credited:
        raise Conflict(f"This payment is {done.payment.status}, not pending.", code="payment_not_pending")
    return done.payment
