"""Token validation for the proxy's hot path: cache first, database second.

The cache entry is keyed by the token's SHA-256 digest (never the plaintext) and holds what the
proxy needs: owner, scope, activation and expiry, or a reason code (`unknown`, `revoked`,
`expired`, `inactive_user`). Positive entries live at most TOKEN_CACHE_TTL and never past the
token's expiry; negative ones briefly. Fills use SET-if-absent and every revoke/expiry writes a
tombstone after commit, so a fill racing with a revoke can never resurrect a dead token.
`avalidate_digest` (the proxy's path; the proxy bounds the token length) is async-native
(redis.asyncio on Redis): a cache hit makes no thread hop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings

from tokens.metrics import token_validations_total
from tokens.models import AccessToken
from zenzefi.kv import get_kv
from zenzefi.kvkeys import token_validation_key as _key

UNKNOWN, REVOKED, EXPIRED, INACTIVE_USER = "unknown", "revoked", "expired", "inactive_user"
MAX_TOKEN_LENGTH = 256

_hit = token_validations_total.labels(status="cache_hit")
_miss = token_validations_total.labels(status="cache_miss")
_invalid = token_validations_total.labels(status="invalid")


@dataclass(frozen=True, slots=True)
class TokenCheck:
    valid: bool
    reason: str | None = None
    token_id: int | None = None
    user_id: int | None = None
    scope: str | None = None
    duration_hours: int | None = None
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    digest: str = ""

    @property
    def activated(self) -> bool:
        return self.activated_at is not None


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _load(digest: str) -> dict:
    """The database's answer, as a cache record."""
    row = (
        AccessToken.objects.filter(digest=digest)
        .values(
            "pk",
            "user_id",
            "scope",
            "duration_hours",
            "activated_at",
            "expires_at",
            "revoked_at",
            "user__is_active",
        )
        .first()
    )
    if row is None:
        return {"ok": 0, "r": UNKNOWN}
    if row["revoked_at"] is not None:
        return {"ok": 0, "r": REVOKED}
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        return {"ok": 0, "r": EXPIRED}
    if not row["user__is_active"]:
        return {"ok": 0, "r": INACTIVE_USER}
    return {
        "ok": 1,
        "t": row["pk"],
        "u": row["user_id"],
        "s": row["scope"],
        "h": row["duration_hours"],
        "a": _ts(row["activated_at"]),
        "e": _ts(row["expires_at"]),
    }


def _ttl(record: dict, now: float) -> int:
    if not record["ok"]:
        if record["r"] in (REVOKED, EXPIRED):  # final states: a longer tombstone is safe
            return settings.TOKEN_CACHE_TTL
        return settings.TOKEN_NEGATIVE_CACHE_TTL
    ttl = settings.TOKEN_CACHE_TTL
    if record["e"] is not None:
        ttl = min(ttl, int(record["e"] - now))
    return max(1, ttl)


def _check(record: dict, digest: str, now: float) -> TokenCheck:
    if not record["ok"]:
        return TokenCheck(False, record["r"], digest=digest)
    expires = record["e"]
    if expires is not None and expires <= now:
        return TokenCheck(False, EXPIRED, token_id=record["t"], user_id=record["u"], digest=digest)
    return TokenCheck(
        True,
        None,
        token_id=record["t"],
        user_id=record["u"],
        scope=record["s"],
        duration_hours=record["h"],
        activated_at=_dt(record["a"]),
        expires_at=_dt(expires),
        digest=digest,
    )


def _count(check: TokenCheck, hit: bool) -> TokenCheck:
    (_invalid if not check.valid else _hit if hit else _miss).inc()
    return check


def cache_key(digest: str) -> str:
    """The validation cache entry of a token (the proxy reads it in its one kv round trip)."""
    return _key(digest)


def check_cached(record: dict, digest: str) -> TokenCheck:
    """A validation answer from a cache entry already read (a cache hit)."""
    return _count(_check(record, digest, datetime.now(UTC).timestamp()), True)


async def avalidate_digest(digest: str, *, kv=None) -> TokenCheck:
    """Async validation by digest (browser mode knows only the digest). A hit is one async kv read."""
    kv = kv or get_kv()
    record = await kv.aget(_key(digest))
    hit = record is not None
    now = datetime.now(UTC).timestamp()
    if not hit:
        record = await sync_to_async(_load)(digest)
        await kv.aset(_key(digest), record, _ttl(record, now), nx=True)
    return _count(_check(record, digest, now), hit)


def forget(digest: str) -> None:
    """The token's state changed (e.g. activation): the next validation reloads it."""
    get_kv().delete(_key(digest))


def mark_dead(digest: str, reason: str) -> None:
    """Revoked or expired: overwrite any entry with a tombstone (a racing fill cannot undo it)."""
    get_kv().set(_key(digest), {"ok": 0, "r": reason}, settings.TOKEN_CACHE_TTL)


# SET each KEYS[i] to ARGV[1] with a TTL of ARGV[2] seconds.
_SET_MANY_LUA = """
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return #KEYS
"""


def mark_dead_many(digests: list[str], reason: str) -> None:
    """`mark_dead` for many tokens in one round trip (a Redis pipeline; the file cache loops)."""
    if not digests:
        return
    from zenzefi.kv import RedisKV

    kv = get_kv()
    value = json.dumps({"ok": 0, "r": reason})
    if isinstance(kv, RedisKV):
        # One command per 1 000 keys (a server-side loop), not one SET each: the client packs
        # and parses a single command instead of a thousand.
        ttl = max(1, int(settings.TOKEN_CACHE_TTL))
        keys = [kv.full_key(_key(digest)) for digest in digests]
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            kv.client.eval(_SET_MANY_LUA, len(batch), *batch, value, ttl)
        return
    for digest in digests:
        kv.set(_key(digest), {"ok": 0, "r": reason}, settings.TOKEN_CACHE_TTL)


def forget_user(user_id: int) -> None:
    """The owner changed. Deactivated: a short `inactive_user` tombstone on each of their tokens
    (so a fill racing with the change cannot store a stale "valid"); otherwise drop the entries."""
    from accounts.models import User

    digests = list(AccessToken.objects.filter(user_id=user_id).values_list("digest", flat=True))
    kv = get_kv()
    if User.objects.filter(pk=user_id, is_active=False).exists():
        for digest in digests:
            kv.set(_key(digest), {"ok": 0, "r": INACTIVE_USER}, settings.TOKEN_NEGATIVE_CACHE_TTL)
    else:
        kv.delete(*(_key(d) for d in digests))
