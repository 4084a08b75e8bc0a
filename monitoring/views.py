"""`/health` and `/health/detailed`: answers from the result the health-check job cached.

No check runs on the request path (no database query): the beat job (`monitoring.tasks.
run_health_checks`, every 50 s) stores its result for HEALTH_CACHE_TTL seconds. Before the first
run (or when the job has not run for longer than that) the status is `unknown` with 200, so a
starting platform is not killed by its orchestrator. `unhealthy` answers 503; so does a shared
store that cannot be reached at all.

Two ways in, one answer: Django views (WSGI, the test client) and `health_asgi`, a raw ASGI app
that `zenzefi/asgi.py` routes HEALTH_PATHS to. Under ASGI every sync middleware hook of the Django
stack is a thread hop, and `/health` needs none of them (SPEC §19: ≤ 5 ms median); on Redis its
read is async-native (redis.asyncio), on the embedded default one hop to the file cache.
"""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from monitoring.health import HEALTH_KEY, UNHEALTHY, UNKNOWN
from zenzefi.kv import get_kv

HEALTH_PATHS = frozenset({"/health", "/health/detailed"})


def _answer_for(result: dict | None, error: Exception | None = None) -> tuple[dict, int]:
    if error is not None:
        body = {
            "status": UNHEALTHY,
            "checked_at": None,
            "components": {"cache": {"status": UNHEALTHY, "error": type(error).__name__}},
        }
        return body, 503
    if not result:
        return {"status": UNKNOWN, "checked_at": None, "components": {}}, 200
    return result, 503 if result["status"] == UNHEALTHY else 200


def _shape(body: dict, detailed: bool) -> dict:
    return body if detailed else {"status": body["status"], "checked_at": body["checked_at"]}


def _load() -> tuple[dict, int]:
    try:
        return _answer_for(get_kv().get(HEALTH_KEY))
    except Exception as exc:
        return _answer_for(None, exc)


async def _aload() -> tuple[dict, int]:
    try:
        return _answer_for(await get_kv().aget(HEALTH_KEY))
    except Exception as exc:
        return _answer_for(None, exc)


def _respond(body: dict, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status)
    # A 503 here is an answer, not a server error: probes poll every few seconds, and the
    # health-check job already logs what failed. Keep django.request from logging each one.
    response._has_been_logged = True
    return response


@never_cache
def health(request):
    body, status = _load()
    return _respond(_shape(body, detailed=False), status)


@never_cache
def health_detailed(request):
    body, status = _load()
    return _respond(_shape(body, detailed=True), status)


async def health_asgi(scope, receive, send) -> None:
    """The raw ASGI app for GET/HEAD `/health` and `/health/detailed` (405 for other methods)."""
    method = scope.get("method", "GET")
    extra: list[tuple[bytes, bytes]] = []
    if method in ("GET", "HEAD"):
        body, status = await _aload()
        payload = json.dumps(_shape(body, detailed=scope["path"] == "/health/detailed")).encode()
    else:
        payload, status = b'{"detail": "Method not allowed.", "code": "method_not_allowed"}', 405
        extra.append((b"allow", b"GET, HEAD"))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"max-age=0, no-cache, no-store, must-revalidate, private"),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})
