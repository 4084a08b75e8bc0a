"""Proxy state in the shared key-value store (never the database on the hot path).

Keys (under the kv prefix of `zenzefi.kv`):
  tokval:{digest}           the token validation cache entry (owned by tokens.validation)
  pxrl:{digest}:{minute}    per-token request counter of the current minute (atomic INCR + TTL)
  pxdev:{digest}            the active session: {"dev", "sid", "tid", "st", "ts"} (device, session
                            key, token id, started, last seen); older than SESSION_IDLE_MINUTES = idle
  pxs:{sid}                 the session's counters: n (requests), bi/bo (bytes in/out), ls (last seen)
  pxdirty                   the set of session keys whose counters changed since the flush job last
                            took them (added in the same pipeline as the counters; the job pops them)
  pxclaim:{digest}          short lock while one request starts a session
  pxconf:{digest}:{dev}     de-duplicates device-conflict audit entries
  pxck:{cookie id}          browser mode: cookie session id -> {"d": token digest, "dev": device}
  pxenter:{code}            browser mode: one-time entry code (short TTL, taken once) -> the same
  pxcc:{digest}             requests in flight: a sorted set of request tags scored by start time
                            (embedded default: a counter); entries older than the window fade

A steady-state request costs one pipelined round trip (validation entry, rate-limit INCR, device
record, its entry in the in-flight set) on redis.asyncio, and one more, off its latency path, to
leave that set; session counters and "last seen" are batched per worker and written
every PROXY_COUNTER_FLUSH_SECONDS in one pipeline. On the embedded default (file cache) each step
is one thread hop doing the same work, not atomic across processes, which the embedded default
accepts (production runs Redis).
"""

from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import sync_to_async

from zenzefi.kv import CacheKV, RedisKV, get_kv
from zenzefi.kvkeys import PROXY_DIRTY_KEY as DIRTY_KEY
from zenzefi.kvkeys import proxy_counters_key as counters_key
from zenzefi.kvkeys import proxy_device_key as device_key
from zenzefi.kvkeys import proxy_inflight_key as inflight_key
from zenzefi.kvkeys import proxy_rate_key

COUNTERS_TTL = 7 * 24 * 3600

# Refresh "last seen" only if the record still belongs to this session (a takeover may have
# replaced it meanwhile); never resurrect an expired record.
_TOUCH_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur and string.find(cur, ARGV[2], 1, true) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return 1
end
return 0
"""


# The admission round trip as one server-side script (one command to pack and parse instead of
# eight): the validation entry, the rate-limit counter of the minute, the device record and, with a
# tag, this request joining the token's in-flight set (entries older than the span fade first).
_ADMIT_LUA = """
local cached = redis.call('GET', KEYS[1])
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], 120) end
local device = redis.call('GET', KEYS[3])
local inflight = 0
if ARGV[1] ~= '' then
  local now = tonumber(ARGV[2])
  local span = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - span)
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  inflight = redis.call('ZCARD', KEYS[4])
  redis.call('EXPIRE', KEYS[4], span)
end
return {cached or false, count, device or false, inflight}
"""


def _decode_counters(raw: dict) -> dict[str, float]:
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


# HGETALL of every KEYS[i], as one string: fields and values joined by \x1f, keys by \x1e
# (an empty record for a missing key).
_COUNTERS_MANY_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
    out[i] = table.concat(redis.call('HGETALL', key), '\\31')
end
return table.concat(out, '\\30')
"""


def _decode_record(record: str) -> dict[str, float]:
    parts = record.split("\x1f")
    return {parts[i]: float(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}


class RedisState:
    def __init__(self, kv: RedisKV):
        self.kv = kv
        self._admit_script = None

    async def admit(
        self, digest: str, window: int, validation_key: str, tag: str | None = None, span: int = 600
    ) -> tuple[Any, int, dict | None, int]:
        """One round trip: the validation cache entry, this request counted in the token's minute,
        the active session record and (with `tag`) this request added to the token's in-flight set:
        (entry, count, record, requests in flight including this one)."""
        kv = self.kv
        client = kv.aclient()
        script = self._admit_script
        if script is None:
            script = self._admit_script = client.register_script(_ADMIT_LUA)
        keys = [
            kv.full_key(validation_key),
            kv.full_key(proxy_rate_key(digest, window)),
            kv.full_key(device_key(digest)),
            kv.full_key(inflight_key(digest)),
        ]
        args = [tag or "", time.time(), span]
        cached, count, device, inflight = await script(keys=keys, args=args, client=client)
        return (
            json.loads(cached) if cached else None,
            int(count),
            json.loads(device) if device else None,
            int(inflight),
        )

    async def release_many(self, entries: list[tuple[str, str]]) -> None:
        """Leave the in-flight sets (one pipeline for a batch of finished requests)."""
        pipe = self.kv.aclient().pipeline(transaction=False)
        for digest, tag in entries:
            pipe.zrem(self.kv.full_key(inflight_key(digest)), tag)
        await pipe.execute()

    async def release(self, digest: str, tag: str) -> None:
        await self.kv.aclient().zrem(self.kv.full_key(inflight_key(digest)), tag)

    async def inflight(self, digest: str) -> int:
        return int(await self.kv.aclient().zcard(self.kv.full_key(inflight_key(digest))))

    async def take(self, key: str) -> Any:
        """Get and delete (single use)."""
        raw = await self.kv.aclient().getdel(self.kv.full_key(key))
        return None if raw is None else json.loads(raw)

    async def touch_many(self, entries: list[dict], ttl: int) -> None:
        """Write batched session counters and "last seen" (one pipeline for all sessions)."""
        kv = self.kv
        pipe = kv.aclient().pipeline(transaction=False)
        for e in entries:
            record = {**e["record"], "ts": e["ts"]}
            device = kv.full_key(device_key(e["digest"]))
            pipe.eval(_TOUCH_LUA, 1, device, json.dumps(record), record["sid"], ttl)
            key = kv.full_key(counters_key(record["sid"]))
            for field in ("n", "bi", "bo"):
                if e[field]:
                    pipe.hincrby(key, field, e[field])
            pipe.hset(key, "ls", e["ts"])
            pipe.expire(key, COUNTERS_TTL)
        if entries:
            # In the same pipeline as the counters: the flush job writes only these sessions.
            pipe.sadd(kv.full_key(DIRTY_KEY), *{e["record"]["sid"] for e in entries})
        await pipe.execute()

    # --- sync (services, jobs)
    def counters(self, sid: str) -> dict[str, float] | None:
        raw = self.kv.client.hgetall(self.kv.full_key(counters_key(sid)))
        return _decode_counters(raw) if raw else None

    def drop_counters(self, sid: str) -> None:
        self.kv.client.delete(self.kv.full_key(counters_key(sid)))

    def counters_many(self, sids: list[str]) -> list[dict[str, float] | None]:
        """`counters` of many sessions in one pipelined round trip (the jobs)."""
        if not sids:
            return []
        # One command whose reply is one string (the server loops over the keys): the client
        # parses one reply instead of a multi-line reply per session (most of the job's time).
        keys = [self.kv.full_key(counters_key(sid)) for sid in sids]
        raw = self.kv.client.eval(_COUNTERS_MANY_LUA, len(keys), *keys)
        raw = raw.decode() if isinstance(raw, bytes) else raw
        records = raw.split("\x1e")
        if len(records) != len(sids):  # pragma: no cover - the script returns one per key
            raise RuntimeError("counters_many: unexpected reply")
        return [_decode_record(record) if record else None for record in records]

    def drop_counters_many(self, sids: list[str]) -> None:
        if sids:
            self.kv.client.delete(*(self.kv.full_key(counters_key(sid)) for sid in sids))

    def pop_dirty(self, count: int) -> list[str]:
        """Take up to `count` sessions whose counters changed (SPOP: a concurrent flush takes
        others; a session counted again after this is marked again)."""
        return [
            m.decode() if isinstance(m, bytes) else m
            for m in self.kv.client.spop(self.kv.full_key(DIRTY_KEY), count)
        ]

    def mark_dirty(self, sids: list[str]) -> None:
        """Mark sessions as changed (again: a flush that failed puts back what it took)."""
        if sids:
            self.kv.client.sadd(self.kv.full_key(DIRTY_KEY), *sids)


class CacheState:
    def __init__(self, kv: CacheKV):
        self.kv = kv

    def _admit(self, digest: str, window: int, validation_key: str, tag: str | None, span: int):
        cached = self.kv.get(validation_key)
        count = self.kv.incr(proxy_rate_key(digest, window), 1, 120)
        inflight = self.kv.incr(inflight_key(digest), 1, span) if tag is not None else 0
        return cached, count, self.kv.get(device_key(digest)), inflight

    async def admit(
        self, digest: str, window: int, validation_key: str, tag: str | None = None, span: int = 600
    ) -> tuple[Any, int, dict | None, int]:
        return await sync_to_async(self._admit, thread_sensitive=False)(
            digest, window, validation_key, tag, span
        )

    def _release(self, digest: str) -> None:
        if self.kv.incr(inflight_key(digest), -1, 600) <= 0:
            self.kv.delete(inflight_key(digest))

    def _release_many(self, entries: list[tuple[str, str]]) -> None:
        for digest, _tag in entries:
            self._release(digest)

    async def release_many(self, entries: list[tuple[str, str]]) -> None:
        await sync_to_async(self._release_many, thread_sensitive=False)(entries)

    async def inflight(self, digest: str) -> int:
        return int(await sync_to_async(self.kv.get, thread_sensitive=False)(inflight_key(digest)) or 0)

    def _take(self, key: str) -> Any:
        from django.core.cache import cache

        full = self.kv.full_key(key)
        raw = cache.get(full)
        # delete() reports whether this caller removed it: one winner among concurrent takers.
        if raw is None or not cache.delete(full):
            return None
        return json.loads(raw)

    async def take(self, key: str) -> Any:
        return await sync_to_async(self._take, thread_sensitive=False)(key)

    def _touch_many(self, entries: list[dict], ttl: int) -> None:
        for e in entries:
            record = {**e["record"], "ts": e["ts"]}
            current = self.kv.get(device_key(e["digest"]))
            if current and current.get("sid") == record["sid"]:
                self.kv.set(device_key(e["digest"]), record, ttl)
            key = counters_key(record["sid"])
            counters = self.kv.get(key) or {}
            for field in ("n", "bi", "bo"):
                counters[field] = counters.get(field, 0) + e[field]
            counters["ls"] = e["ts"]
            self.kv.set(key, counters, COUNTERS_TTL)
        self.mark_dirty([e["record"]["sid"] for e in entries])

    async def touch_many(self, entries: list[dict], ttl: int) -> None:
        await sync_to_async(self._touch_many, thread_sensitive=False)(entries, ttl)

    def counters(self, sid: str) -> dict[str, Any] | None:
        return self.kv.get(counters_key(sid))

    def drop_counters(self, sid: str) -> None:
        self.kv.delete(counters_key(sid))

    def counters_many(self, sids: list[str]) -> list[dict[str, Any] | None]:
        return [self.kv.get(counters_key(sid)) for sid in sids]

    def drop_counters_many(self, sids: list[str]) -> None:
        for sid in sids:
            self.drop_counters(sid)

    def pop_dirty(self, count: int) -> list[str]:
        dirty = self.kv.get(DIRTY_KEY) or []
        if not dirty:
            return []
        taken, rest = dirty[:count], dirty[count:]
        if rest:
            self.kv.set(DIRTY_KEY, rest, COUNTERS_TTL)
        else:
            self.kv.delete(DIRTY_KEY)
        return taken

    def mark_dirty(self, sids: list[str]) -> None:
        if not sids:
            return
        dirty = self.kv.get(DIRTY_KEY) or []
        known = set(dirty)
        dirty.extend(sid for sid in dict.fromkeys(sids) if sid not in known)
        self.kv.set(DIRTY_KEY, dirty, COUNTERS_TTL)


_state: RedisState | CacheState | None = None
_state_kv = None


def get_state() -> RedisState | CacheState:
    """The state for the current kv (re-created if the kv is swapped)."""
    global _state, _state_kv
    kv = get_kv()
    if _state is None or _state_kv is not kv:
        _state = RedisState(kv) if isinstance(kv, RedisKV) else CacheState(kv)
        _state_kv = kv
    return _state
