"""Event payloads (the `data` of each webhook event) built from the platform's models."""

from __future__ import annotations

from typing import Any


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def token_event_data(token) -> dict[str, Any]:
    return {
        "token_id": token.pk,
        "prefix": token.prefix,
        "duration_hours": token.duration_hours,
        "scope": token.scope,
        "cost": f"{token.cost:.2f}",
        "auto_renew": token.auto_renew,
        "created_at": _iso(token.created_at),
        "activated_at": _iso(token.activated_at),
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
        "refund_amount": f"{token.refund_amount:.2f}" if token.refund_amount is not None else None,
    }


def token_event_emit(*, token_id: int, user_id: int, event: str) -> list[int]:
    """Emit a token event; the token is read (fresh) only when an endpoint wants the event."""
    from tokens.models import AccessToken
    from webhooks.services import webhook_emit

    def data() -> dict[str, Any]:
        return token_event_data(AccessToken.objects.get(pk=token_id))

    return webhook_emit(user_id=user_id, event=event, data=data)


def token_events_emit(*, tokens: list[tuple[int, int]], event: str) -> list[int]:
    """`token_event_emit` for many (token_id, user_id) pairs at once: a fixed number of queries
    per call (endpoints of all the users, then the tokens that some endpoint wants)."""
    from tokens.models import AccessToken
    from webhooks.services import webhook_emit_many

    def data(token_ids: list[int]) -> dict[int, dict[str, Any]]:
        return {t.pk: token_event_data(t) for t in AccessToken.objects.filter(pk__in=token_ids).order_by()}

    return webhook_emit_many(items=tokens, event=event, data=data)
