"""Every key of the shared key-value store (`zenzefi.kv`), in one place.

The kv adds its own prefix (`<CACHE_KEY_PREFIX>:kv:` on Redis, `kv:` in the embedded default's
cache); what is here comes after it. These strings are deployed state: during a rolling deploy old
and new processes read and write the same Redis, so a key's spelling never changes here (a new
format gets a new prefix). Imports nothing of the project: every layer may use it.

By prefix (the owner writes them):
- `tokval:` token validation entries and tombstones (`tokens.validation`);
- `pxrl:` `pxdev:` `pxcc:` `pxs:` proxy admission: rate counter, active device, requests in flight,
  session counters (`proxy.state`); `pxclaim:` `pxconf:` session-start lock, device-conflict audit
  marker (`proxy.admission`); `pxck:` `pxenter:` browser mode's cookie sessions and one-time entry
  codes (`proxy.browser`);
- `rl:` the REST API throttle: window counters, repeat-offender streaks, bans and their index
  (`accounts.throttling`);
- `health:` `gauges:` `backups:` the last health check, the gauges' figures, the last backup
  (`monitoring`, `backups`);
- `payments:` the refused-callback audit marker, once per IP and minute (`payments.services`).
"""

from __future__ import annotations

# --- tokens.validation ---------------------------------------------------------------------------


def token_validation_key(digest: str) -> str:
    """A token's validation entry (or tombstone), by the SHA-256 digest of the token."""
    return f"tokval:{digest}"


# --- the proxy ------------------------------------------------------------------------------------


def proxy_rate_key(digest: str, minute: int) -> str:
    """A token's proxied requests in one minute (`int(time // 60)`): INCR + TTL."""
    return f"pxrl:{digest}:{minute}"


def proxy_device_key(digest: str) -> str:
    """A token's active session: {"dev", "sid", "tid", "st", "ts"}."""
    return f"pxdev:{digest}"


def proxy_inflight_key(digest: str) -> str:
    """A token's requests in flight (a sorted set of request tags; a counter in the embedded default)."""
    return f"pxcc:{digest}"


def proxy_counters_key(sid: str) -> str:
    """A proxy session's counters: n (requests), bi/bo (bytes in/out), ls (last seen)."""
    return f"pxs:{sid}"


# Sessions whose counters changed since the flush job last took them (a Redis set; the embedded
# default keeps a set in one cache entry, not atomic across processes, like its counters).
PROXY_DIRTY_KEY = "pxdirty"


def proxy_claim_key(digest: str) -> str:
    """The short lock held while one request starts a token's session."""
    return f"pxclaim:{digest}"


def proxy_conflict_key(digest: str, device_hash: str) -> str:
    """De-duplicates device-conflict audit entries (once per token, device and minute)."""
    return f"pxconf:{digest}:{device_hash}"


def proxy_cookie_key(sid: str) -> str:
    """Browser mode: the cookie's session id -> {"d": token digest, "dev": device}."""
    return f"pxck:{sid}"


def proxy_entry_key(code: str) -> str:
    """Browser mode: a one-time entry code (short TTL, taken once) -> {"d", "dev"}."""
    return f"pxenter:{code}"


# --- the REST API throttle (accounts.throttling) --------------------------------------------------

RATE_BAN_INDEX_KEY = "rl:bans"  # the bans in force, for staff: {key: {"until", "tier"}}


def rate_api_key(key: str, window: int) -> str:
    """A caller's API requests in one window."""
    return f"rl:api:{key}:{window}"


def rate_streak_key(key: str) -> str:
    """A caller's consecutive refused windows: {"w", "n"}."""
    return f"rl:streak:{key}"


def rate_ban_key(key: str) -> str:
    """A caller's temporary ban: {"until", "tier"}."""
    return f"rl:ban:{key}"


# --- monitoring, backups, payments ---------------------------------------------------------------

HEALTH_KEY = "health:status"  # the last health check's result (monitoring.health)
GAUGES_KEY = "gauges:figures"  # the gauges' figures (monitoring.gauges)
LAST_BACKUP_KEY = "backups:last"  # the last backup's outcome (backups.services)


def payment_callback_audit_key(ip: str, minute: int) -> str:
    """A refused payment callback was audited for this client IP in this minute."""
    return f"payments:callback-audit:{ip}:{minute}"
