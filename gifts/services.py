"""Gift codes: buy a token for someone else now (charged at once: a GIFT ledger row of −price),
redeem it later into a token on the redeemer's account.

The code (`XXXX-XXXX-XXXX-XXXX`, 16 characters of an unambiguous 31-letter alphabet, ~79 bits)
is shown once; only its SHA-256 digest is stored. Codes expire after GIFT_CODE_TTL_DAYS (an
expired code is not refunded). Redemption is single-use under concurrency: one conditional
UPDATE (`WHERE redeemed_at IS NULL AND expires_at > now`) wins; the token is issued in the same
transaction with `cost` = the price paid (so revoking it refunds to the redeemer, pro rata).
The redeemer's ledger gets no row (a zero-amount row is not allowed): the redemption is in the
audit log and in both users' gift lists.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import REFERRAL_ALPHABET, User
from audit.services import audit_record, request_origin
from currency.models import TransactionType
from currency.services import balance_change
from gifts.models import GiftCode
from tokens.services import IssuedToken, token_issue, token_price, validate_scope
from zenzefi.errors import ApplicationError

CODE_GROUPS = 4
GROUP_LENGTH = 4


class GiftCodeInvalid(ApplicationError):
    status_code = 404
    code = "gift_code_invalid"
    default_detail = "This gift code is unknown, expired or already redeemed."


@dataclass(frozen=True)
class PurchasedGift:
    gift: GiftCode
    code: str  # shown once to the buyer; never stored


@dataclass(frozen=True)
class RedeemedGift:
    gift: GiftCode
    issued: IssuedToken


def normalize_code(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def code_digest(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(CODE_GROUPS * GROUP_LENGTH))
    return "-".join(raw[i : i + GROUP_LENGTH] for i in range(0, len(raw), GROUP_LENGTH))


@transaction.atomic
def gift_purchase(*, buyer: User, duration_hours: int, scope: str, request=None) -> PurchasedGift:
    price = token_price(duration_hours)
    validate_scope(scope)
    code = _new_code()
    gift = GiftCode.objects.create(
        buyer=buyer,
        digest=code_digest(code),
        prefix=code[:4],
        duration_hours=duration_hours,
        scope=scope,
        price=price,
        expires_at=timezone.now() + timedelta(days=settings.GIFT_CODE_TTL_DAYS),
    )
    # Charged now (402 rolls the gift back): the buyer's side of the ledger.
    row = balance_change(
        user=buyer,
        amount=-price,
        transaction_type=TransactionType.GIFT,
        description=f"Gift code {gift.prefix}… ({duration_hours} h, {scope})",
        reference=f"gift:{gift.pk}",
        request=request,
    )
    GiftCode.objects.filter(pk=gift.pk).update(purchase=row)
    gift.purchase = row
    audit_record(
        action="gift.purchase",
        actor=buyer,
        resource_type="gift",
        resource_id=gift.pk,
        details={
            "prefix": gift.prefix,
            "duration_hours": duration_hours,
            "scope": scope,
            "price": str(price),
            "transaction_id": row.pk,
            "expires_at": gift.expires_at.isoformat(),
        },
        **request_origin(request),
    )
    return PurchasedGift(gift=gift, code=code)


def gift_redeem(*, user: User, code: str, request=None) -> RedeemedGift:
    """Redeem a code into a token on `user`'s account; 404 for an unknown, expired or used code."""
    normalized = normalize_code(code)
    if len(normalized) != CODE_GROUPS * GROUP_LENGTH:
        _audit_failed(user=user, reason="malformed", request=request)
        raise GiftCodeInvalid()
    digest = code_digest(normalized)
    with transaction.atomic():
        now = timezone.now()
        won = GiftCode.objects.filter(digest=digest, redeemed_at__isnull=True, expires_at__gt=now).update(
            redeemed_at=now, redeemed_by=user
        )
        if won:
            gift = GiftCode.objects.select_for_update(of=("self",)).get(digest=digest)
            issued = token_issue(
                user=user, duration_hours=gift.duration_hours, scope=gift.scope, cost=gift.price
            )
            GiftCode.objects.filter(pk=gift.pk).update(token=issued.token)
            gift.token = issued.token
            audit_record(
                action="gift.redeem",
                actor=user,
                resource_type="gift",
                resource_id=gift.pk,
                details={
                    "prefix": gift.prefix,
                    "buyer_id": gift.buyer_id,
                    "token_id": issued.token.pk,
                    "token_prefix": issued.token.prefix,
                    "duration_hours": gift.duration_hours,
                    "scope": gift.scope,
                    "value": str(gift.price),
                },
                **request_origin(request),
            )
            return RedeemedGift(gift=gift, issued=issued)
    reason = "unknown"
    found = GiftCode.objects.filter(digest=digest).only("redeemed_at", "expires_at").first()
    if found is not None:
        reason = "already_redeemed" if found.redeemed_at else "expired"
    _audit_failed(user=user, reason=reason, request=request)
    raise GiftCodeInvalid()


def _audit_failed(*, user: User, reason: str, request=None) -> None:
    audit_record(
        action="gift.redeem_failed",
        actor=user,
        resource_type="gift",
        details={"reason": reason},
        **request_origin(request),
        suspicious=reason in ("unknown", "malformed"),
    )
