"""REST API rate limits by tier (SPEC §9): the default DRF throttle of every API view.

- Signed-in callers are counted per user at their tier's rate: API_RATE_LIMIT_FREE (100/min),
  API_RATE_LIMIT_PREMIUM (500/min), API_RATE_LIMIT_ENTERPRISE (0 = unlimited). Anonymous
  callers are counted per client IP (REMOTE_ADDR as the server set it, never X-Forwarded-For)
  at the free rate. Superusers are never limited. The tier is read from the user row on every
  request, so a change by staff in the admin applies at once.
- Fixed one-minute windows; counters live in the shared store (`zenzefi.kv`: Redis INCR+EXPIRE,
  or the embedded default's shared cache), so every process sees the same count.
- Over the limit: 429 `{"detail", "code": "throttled"}` with `Retry-After` (seconds to the end
  of the window). Every refused request is counted in `rate_limit_hits_total{scope="api"}`; the
  audit log gets one `rate_limit.hit` entry per key and window (the first refusal), so a flood
  cannot flood the audit table.
- Repeat offenders: a key refused in API_RATE_LIMIT_BAN_AFTER (3) consecutive windows is banned
  for API_RATE_LIMIT_BAN_SECONDS (300): every request gets 429 until the ban ends. A ban is
  audited as a suspicious `rate_limit.ban` entry (staff filter the audit log on it) and counted
  in `rate_limit_hits_total{scope="api_ban"}`; `rate_limit_bans()` lists the live ones.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from audit.services import audit_record, client_ip, request_origin
from zenzefi.kv import RedisKV, get_kv
from zenzefi.kvkeys import RATE_BAN_INDEX_KEY as BAN_INDEX_KEY
from zenzefi.kvkeys import rate_api_key, rate_ban_key, rate_streak_key
from zenzefi.metrics import rate_limit_hits_total

WINDOW_SECONDS = 60


def tier_limit(tier: str | None) -> int:
    """Requests per minute for a tier (0 = unlimited); unknown tiers get the free rate."""
    limits = {
        "free": settings.API_RATE_LIMIT_FREE,
        "premium": settings.API_RATE_LIMIT_PREMIUM,
        "enterprise": settings.API_RATE_LIMIT_ENTERPRISE,
    }
    return int(limits.get(tier or "free", settings.API_RATE_LIMIT_FREE) or 0)


def rate_limit_bans() -> list[dict]:
    """The bans still in force (for staff: key, tier, until)."""
    kv = get_kv()
    now = time.time()
    index = kv.get(BAN_INDEX_KEY) or {}
    return [
        {"key": key, **ban}
        for key, ban in sorted(index.items())
        if ban.get("until", 0) > now and kv.get(rate_ban_key(key))
    ]


class TierRateThrottle(BaseThrottle):
    scope = "api"

    def __init__(self):
        self._wait: float | None = None

    def _identity(self, request) -> tuple[str, str, object | None]:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"u{user.pk}", getattr(user, "tier", "free"), user
        return f"ip{client_ip(request) or 'unknown'}", "free", None

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_superuser:
            return True
        key, tier, actor = self._identity(request)
        kv = get_kv()
        now = time.time()
        limit = tier_limit(tier)
        window = int(now // WINDOW_SECONDS)
        counter = rate_api_key(key, window)

        ban, count = self._ban_and_count(kv, key, counter if limit > 0 else None)
        if ban and float(ban.get("until", 0)) > now:
            if count is not None:  # a banned request is not counted in the window
                kv.incr(counter, -1)
            self._wait = max(1.0, float(ban["until"]) - now)
            rate_limit_hits_total.labels(scope="api_ban").inc()
            return False

        if limit <= 0:
            return True
        if count <= limit:
            return True

        self._wait = WINDOW_SECONDS - (now % WINDOW_SECONDS)
        rate_limit_hits_total.labels(scope="api").inc()
        if count == limit + 1:  # the first refusal of this window
            self._first_refusal(request, view, key=key, tier=tier, actor=actor, limit=limit, window=window)
        return False

    @staticmethod
    def _ban_and_count(kv, key: str, counter: str | None) -> tuple[dict | None, int | None]:
        """The key's ban (or None) and, with a counter, the window's count after this request.

        On Redis both in one round trip (GET, INCRBY and EXPIRE pipelined): the throttle runs on
        every API request. Elsewhere (the embedded default's cache) one call after the other."""
        if isinstance(kv, RedisKV):
            pipe = kv.client.pipeline(transaction=False)
            pipe.get(kv.full_key(rate_ban_key(key)))
            if counter:
                pipe.incrby(kv.full_key(counter), 1)
                pipe.expire(kv.full_key(counter), WINDOW_SECONDS * 2, nx=True)
            replies = pipe.execute()
            ban = json.loads(replies[0]) if replies[0] is not None else None
            return ban, int(replies[1]) if counter else None
        ban = kv.get(rate_ban_key(key))
        if counter is None or (ban and float(ban.get("until", 0)) > time.time()):
            return ban, None
        return ban, kv.incr(counter, ttl=WINDOW_SECONDS * 2)

    def _first_refusal(self, request, view, *, key, tier, actor, limit, window) -> None:
        kv = get_kv()
        audit_record(
            action="rate_limit.hit",
            actor=actor,
            resource_type="endpoint",
            resource_id=request.path[:64],
            details={"scope": "api", "key": key, "tier": tier, "limit": f"{limit}/min"},
            **request_origin(request),
        )
        streak = kv.get(rate_streak_key(key)) or {}
        consecutive = streak.get("n", 0) + 1 if streak.get("w") == window - 1 else 1
        kv.set(rate_streak_key(key), {"w": window, "n": consecutive}, WINDOW_SECONDS * 3)
        ban_after = settings.API_RATE_LIMIT_BAN_AFTER
        if ban_after and consecutive >= ban_after:
            seconds = settings.API_RATE_LIMIT_BAN_SECONDS
            until = time.time() + seconds
            kv.set(rate_ban_key(key), {"until": until, "tier": tier}, seconds)
            kv.delete(rate_streak_key(key))
            index = {
                k: v for k, v in (kv.get(BAN_INDEX_KEY) or {}).items() if v.get("until", 0) > time.time()
            }
            index[key] = {"until": until, "tier": tier}
            kv.set(BAN_INDEX_KEY, index, seconds)
            self._wait = float(seconds)
            audit_record(
                action="rate_limit.ban",
                actor=actor,
                resource_type="rate_limit_key",
                resource_id=key,
                details={"scope": "api", "tier": tier, "windows": consecutive, "seconds": seconds},
                **request_origin(request),
                suspicious=True,
            )

    def wait(self) -> float | None:
        return self._wait
