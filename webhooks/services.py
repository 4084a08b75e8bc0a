"""Customer webhooks: endpoints (create/delete), events (emit), delivery attempts and replays."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record, request_origin
from webhooks import signing
from webhooks.models import EVENTS, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.urlsafety import UnsafeWebhookURL, check_url, validate_url
from zenzefi import outbox
from zenzefi.errors import Conflict, InvalidInput, NotFound

logger = logging.getLogger(__name__)

RESPONSE_KEEP_CHARS = 1000
USER_AGENT = "Zenzefi-Webhooks/1.0"


# --- Endpoints -------------------------------------------------------------------------------


def validate_events(events) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise InvalidInput("events: at least one event is required.", code="invalid_events")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidInput(
            f"events: unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}.", code="invalid_events"
        )
    return list(dict.fromkeys(events))


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once to the owner; never stored


@transaction.atomic
def webhook_endpoint_create(*, user, url: str, events: list[str], request=None) -> CreatedEndpoint:
    url = validate_url(url)
    events = validate_events(events)
    if WebhookEndpoint.objects.filter(user=user).count() >= settings.WEBHOOK_MAX_ENDPOINTS_PER_USER:
        raise Conflict(
            f"At most {settings.WEBHOOK_MAX_ENDPOINTS_PER_USER} webhook endpoints per account.",
            code="too_many_webhooks",
        )
    endpoint = WebhookEndpoint.objects.create(
        user=user, url=url, events=events, secret_salt=signing.new_salt()
    )
    audit_record(
        action="webhook.create",
        actor=user,
        resource_type="webhook_endpoint",
        resource_id=endpoint.pk,
        details={"url": url, "events": events},
        **request_origin(request),
    )
    return CreatedEndpoint(endpoint=endpoint, secret=signing.endpoint_secret(endpoint))


@transaction.atomic
def webhook_endpoint_delete(*, user, endpoint_id: int, request=None) -> None:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, user=user).first()
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.", code="webhook_not_found")
    audit_record(
        action="webhook.delete",
        actor=user,
        resource_type="webhook_endpoint",
        resource_id=endpoint.pk,
        details={"url": endpoint.url},
        **request_origin(request),
    )
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_set_active(*, endpoint_id: int, is_active: bool, actor, request=None) -> WebhookEndpoint:
    """Staff disable or re-enable an endpoint (the admin). Re-enabling starts the failure clock
    again (the auto-disable rule counts from `failing_since`). Audited as `admin.webhook_update`;
    no change, no write."""
    endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.", code="webhook_not_found")
    if endpoint.is_active == is_active:
        return endpoint
    values: dict[str, Any] = {"is_active": is_active}
    if is_active:
        values.update(failing_since=None, consecutive_failures=0, disabled_at=None, disabled_reason="")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**values)
    for name, value in values.items():
        setattr(endpoint, name, value)
    audit_record(
        action="admin.webhook_update",
        actor=actor,
        resource_type="webhook_endpoint",
        resource_id=endpoint.pk,
        details={
            "url": endpoint.url,
            "is_active": is_active,
            "owner_id": endpoint.user_id,
            "by": actor.username,
        },
        **request_origin(request),
    )
    return endpoint


# --- Events ----------------------------------------------------------------------------------


def _queue(delivery_ids: list[int]) -> None:
    from webhooks.tasks import deliver_webhook

    if len(delivery_ids) <= 1:
        for delivery_id in delivery_ids:
            deliver_webhook.delay(delivery_id)
        return
    # Many at once (jobs): one broker connection for the whole batch.
    with deliver_webhook.app.producer_or_acquire() as producer:
        for delivery_id in delivery_ids:
            deliver_webhook.apply_async((delivery_id,), producer=producer)


def webhook_emit(
    *, user_id: int, event: str, data: dict[str, Any] | Callable[[], dict[str, Any]]
) -> list[int]:
    """Create a delivery for each of the user's active endpoints that subscribed to `event` and
    queue them after commit. `data` may be a callable, evaluated only if some endpoint wants it.
    Returns the delivery ids (none when no endpoint matches: one indexed query)."""
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}")
    endpoints = [
        pk
        for pk, events in WebhookEndpoint.objects.filter(user_id=user_id, is_active=True).values_list(
            "pk", "events"
        )
        if event in (events or [])
    ]
    if not endpoints:
        return []
    payload_data = data() if callable(data) else data
    payload = {
        "type": event,
        "timestamp": timezone.now().isoformat(),
        "data": json.loads(json.dumps(payload_data, cls=DjangoJSONEncoder)),
    }
    event_id = f"msg_{uuid.uuid4().hex}"
    with transaction.atomic():
        rows = [
            WebhookDelivery.objects.create(endpoint_id=pk, event=event, event_id=event_id, payload=payload)
            for pk in endpoints
        ]
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _queue(ids), robust=True)
    return ids


def webhook_emit_many(
    *,
    items: list[tuple[int, int]],
    event: str,
    data: Callable[[list[int]], dict[int, dict[str, Any]]],
) -> list[int]:
    """`webhook_emit` for many (object_id, user_id) pairs of one event, in a fixed number of
    queries: one for the endpoints of all the users, `data(object_ids)` (called only for objects
    some endpoint wants) for the payloads, one bulk insert; the deliveries are queued after
    commit in one batch. Returns the delivery ids."""
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}")
    if not items:
        return []
    endpoints: dict[int, list[int]] = {}
    for pk, user_id, events in WebhookEndpoint.objects.filter(
        user_id__in={user_id for _, user_id in items}, is_active=True
    ).values_list("pk", "user_id", "events"):
        if event in (events or []):
            endpoints.setdefault(user_id, []).append(pk)
    wanted = [(object_id, user_id) for object_id, user_id in items if user_id in endpoints]
    if not wanted:
        return []
    payloads = data([object_id for object_id, _ in wanted])
    timestamp = timezone.now().isoformat()
    rows = []
    for object_id, user_id in wanted:
        if object_id not in payloads:
            continue
        payload = {
            "type": event,
            "timestamp": timestamp,
            "data": json.loads(json.dumps(payloads[object_id], cls=DjangoJSONEncoder)),
        }
        event_id = f"msg_{uuid.uuid4().hex}"
        rows.extend(
            WebhookDelivery(endpoint_id=pk, event=event, event_id=event_id, payload=payload)
            for pk in endpoints[user_id]
        )
    with transaction.atomic():
        created = WebhookDelivery.objects.bulk_create(rows, batch_size=500)
        ids = [row.pk for row in created]
        transaction.on_commit(lambda: _queue(ids), robust=True)
    return ids


# --- Delivery (the outbox engine, `zenzefi.outbox`) ------------------------------------------


def backoff_seconds(attempt: int) -> int:
    """Wait after failed attempt number `attempt` (1-based): the one outbox formula
    (`zenzefi.outbox.backoff_seconds`) with WEBHOOK_RETRY_BASE_SECONDS and WEBHOOK_RETRY_MAX_SECONDS."""
    return DELIVERIES.backoff(attempt)


def payload_body(payload: dict) -> bytes:
    """The exact bytes that are signed and sent (stable across attempts)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


AttemptOutcome = outbox.Finished  # (status, retry_in): what one attempt left the delivery in


def _post(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> tuple[int | None, str, str]:
    """One HTTP attempt: (status code or None, response text, error)."""
    try:
        target = check_url(endpoint.url)
    except UnsafeWebhookURL as exc:
        return None, "", f"refused: {exc.detail}"
    body = payload_body(delivery.payload)
    secret = signing.secret_key_bytes(uid=endpoint.uid, salt=endpoint.secret_salt)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.signature_headers(secret=secret, msg_id=delivery.event_id, body=body),
    }
    extensions = {}
    if target.pinned:
        headers["host"] = target.host_header
        if endpoint.url.lower().startswith("https"):
            extensions["sni_hostname"] = target.host
    try:
        with (
            httpx.Client(timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= RESPONSE_KEEP_CHARS * 4:
                    break
            text = b"".join(chunks).decode("utf-8", "replace")[:RESPONSE_KEEP_CHARS]
            return response.status_code, text, ""
    except httpx.HTTPError as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:500]


def _track_endpoint(endpoint: WebhookEndpoint, *, ok: bool, now: datetime) -> None:
    qs = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if ok:
        qs.update(failing_since=None, consecutive_failures=0, last_success_at=now)
        return
    qs.update(consecutive_failures=F("consecutive_failures") + 1, last_failure_at=now)
    qs.filter(failing_since__isnull=True).update(failing_since=now)
    cutoff = now - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    disabled = qs.filter(is_active=True, failing_since__lte=cutoff).update(
        is_active=False,
        disabled_at=now,
        disabled_reason=f"Failing for {settings.WEBHOOK_DISABLE_AFTER_DAYS} days.",
    )
    if disabled:
        logger.warning("webhook endpoint %s disabled after failing since %s", endpoint.pk, cutoff)
        audit_record(
            action="webhook.disable",
            resource_type="webhook_endpoint",
            resource_id=endpoint.pk,
            details={"url": endpoint.url, "reason": "failing"},
        )


def _send(delivery: WebhookDelivery) -> outbox.Result:
    """One attempt of a claimed delivery (the engine's `send`): POST it, and record the attempt
    (`WebhookAttempt`) and the endpoint's health with the outcome."""
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return outbox.Result(
            ok=False,
            error="The endpoint is disabled.",
            final_status=DeliveryStatus.FAILED,
            count_attempt=False,
        )
    started_at = timezone.now()
    started = time.perf_counter()
    status_code, response_text, error = _post(delivery, endpoint)
    duration_ms = int((time.perf_counter() - started) * 1000)
    ok = status_code is not None and 200 <= status_code < 300
    if not ok and not error:
        error = f"HTTP {status_code}"

    def record(*, status: str, number: int, retry_in: int | None, finished: datetime) -> None:
        WebhookAttempt.objects.create(
            delivery_id=delivery.pk,
            number=number,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            response_body=response_text,
            error=error,
            succeeded=ok,
            retry_in_seconds=retry_in,
        )
        _track_endpoint(endpoint, ok=ok, now=finished)

    return outbox.Result(
        ok=ok,
        error=error,
        fields={"last_status_code": status_code, "last_response": response_text},
        record=record,
    )


def _trigger(delivery_id: int, countdown: int, attempts: int) -> None:
    from webhooks.tasks import deliver_webhook

    deliver_webhook.apply_async((delivery_id,), {"attempts": attempts}, countdown=countdown)


DELIVERIES = outbox.Outbox(
    model=WebhookDelivery,
    status_field="status",
    pending=DeliveryStatus.PENDING,
    sending=DeliveryStatus.SENDING,
    retrying=DeliveryStatus.RETRYING,
    succeeded=DeliveryStatus.SUCCEEDED,
    failed=DeliveryStatus.FAILED,
    send=_send,
    max_attempts=lambda: settings.WEBHOOK_MAX_ATTEMPTS,
    backoff_base=lambda: settings.WEBHOOK_RETRY_BASE_SECONDS,
    backoff_cap=lambda: settings.WEBHOOK_RETRY_MAX_SECONDS,
    # Longer than one attempt can take (connect + send + read, each bounded by WEBHOOK_TIMEOUT).
    lease_seconds=lambda: settings.WEBHOOK_TIMEOUT * 3 + 30,
    trigger=_trigger,
    done_at_field="delivered_at",
    select_related=("endpoint",),
    name="webhook delivery",
)


def _claim(delivery_id: int, now: datetime, claim_key: str = "") -> bool:
    """Take the delivery's lease as the trigger message `claim_key` would (tests: a worker that
    claimed and was killed)."""
    where = Q(pk=delivery_id) & outbox._claimable_now(DELIVERIES, claim_key)
    return bool(outbox._claim(DELIVERIES, where, now=now, token=claim_key or "manual", limit=1))


def webhook_delivery_attempt(
    *, delivery_id: int, claim_key: str = "", attempts: int | None = None
) -> AttemptOutcome:
    """Make one attempt of a delivery now and record it (the trigger task). Safe to call twice
    or concurrently: only the caller that claims the row sends; an unexpired lease is never
    taken, except by the same message (`claim_key`, "<task id>:<retries>") redelivered after its
    worker died. A failure schedules the next attempt (backoff) on the row and queues its
    trigger (which carries `attempts`: stale once another worker made that attempt); after
    WEBHOOK_MAX_ATTEMPTS the delivery is failed."""
    return outbox.deliver(DELIVERIES, delivery_id, claim_key=claim_key, attempts=attempts)


@transaction.atomic
def webhook_delivery_replay(*, delivery_id: int, actor=None, request=None) -> WebhookDelivery:
    """Send a delivery again (staff): a new delivery with the same event id and payload."""
    original = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if original is None:
        raise NotFound("Webhook delivery not found.", code="delivery_not_found")
    if not original.endpoint.is_active:
        raise Conflict("The endpoint is disabled; enable it first.", code="webhook_disabled")
    replay = WebhookDelivery.objects.create(
        endpoint=original.endpoint,
        event=original.event,
        event_id=original.event_id,
        payload=original.payload,
        replay_of=original,
    )
    audit_record(
        action="webhook.replay",
        actor=actor,
        resource_type="webhook_delivery",
        resource_id=original.pk,
        details={"replay_id": replay.pk, "event": original.event},
        **request_origin(request),
    )
    transaction.on_commit(lambda: _queue([replay.pk]), robust=True)
    return replay


def webhook_deliveries_requeue_overdue(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """The safety net (beat, every 5 min): deliveries whose trigger was lost (never queued: a
    crash between commit and enqueue, pending for over OUTBOX_GRACE_SECONDS; a retry whose
    queued trigger a broker restart dropped; an attempt whose worker died, lease expired) are
    claimed in chunks and attempted here, each once (`zenzefi.outbox.sweep`)."""
    return outbox.sweep(DELIVERIES, now=now, limit=limit)
