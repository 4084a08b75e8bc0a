"""A small shared key-value store for hot paths: token validation, proxy counters, device locks.

Values are JSON. With `REDIS_URL` it talks to Redis directly, with a sync client and, for async
code, a `redis.asyncio` client per event loop: no thread hop on the proxy's hot path. On the
embedded default it uses Django's (file) cache, shared by every local process; its async
methods go through `sync_to_async` there (a thread hop), which only the embedded default pays.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from functools import cache
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings


class RedisKV:
    def __init__(self, url: str, prefix: str):
        import redis
        import redis.asyncio

        self._url = url
        self.prefix = f"{prefix}:kv:"
        timeout = getattr(settings, "REDIS_SOCKET_TIMEOUT", None)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._async_module = redis.asyncio
        self._async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def full_key(self, key: str) -> str:
        """The Redis key behind `key` (for callers that pipeline raw commands, e.g. the proxy)."""
        return self.prefix + key

    def aclient(self):
        """This event loop's redis.asyncio client (one per loop; `client` is the sync one)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            # A blocking pool: under a burst a request waits (bounded) for a free connection
            # instead of failing with "Too many connections" (issue 11, item 4).
            timeout = getattr(settings, "REDIS_SOCKET_TIMEOUT", None)
            pool = self._async_module.BlockingConnectionPool.from_url(
                self._url,
                max_connections=settings.REDIS_POOL_SIZE,
                timeout=settings.REDIS_POOL_TIMEOUT,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
            )
            client = self._async_module.Redis(connection_pool=pool)
            self._async_clients[loop] = client
        return client

    # --- sync
    def get(self, key: str) -> Any:
        raw = self.client.get(self.full_key(key))
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int, *, nx: bool = False) -> bool:
        return bool(self.client.set(self.full_key(key), json.dumps(value), ex=max(1, int(ttl)), nx=nx))

    def delete(self, *keys: str) -> None:
        if keys:
            self.client.delete(*(self.full_key(k) for k in keys))

    def incr(self, key: str, amount: int = 1, ttl: int | None = None) -> int:
        pipe = self.client.pipeline()
        pipe.incrby(self.full_key(key), amount)
        if ttl:
            pipe.expire(self.full_key(key), int(ttl), nx=True)
        return int(pipe.execute()[0])

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.client.delete(*keys)

    # --- async (native)
    async def aget(self, key: str) -> Any:
        raw = await self.aclient().get(self.full_key(key))
        return None if raw is None else json.loads(raw)

    async def aset(self, key: str, value: Any, ttl: int, *, nx: bool = False) -> bool:
        raw = json.dumps(value)
        return bool(await self.aclient().set(self.full_key(key), raw, ex=max(1, int(ttl)), nx=nx))

    async def adelete(self, *keys: str) -> None:
        if keys:
            await self.aclient().delete(*(self.full_key(k) for k in keys))


_INCR_LOCK = threading.Lock()


class CacheKV:
    """Embedded default: Django's shared cache (the file cache) holding JSON strings."""

    def __init__(self, prefix: str = "kv:"):
        from django.core.cache import cache

        self._cache = cache
        self.prefix = prefix

    def full_key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str) -> Any:
        raw = self._cache.get(self.full_key(key))
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int, *, nx: bool = False) -> bool:
        raw = json.dumps(value)
        if nx:
            return bool(self._cache.add(self.full_key(key), raw, max(1, int(ttl))))
        self._cache.set(self.full_key(key), raw, max(1, int(ttl)))
        return True

    def delete(self, *keys: str) -> None:
        for key in keys:
            self._cache.delete(self.full_key(key))

    def incr(self, key: str, amount: int = 1, ttl: int | None = None) -> int:
        # Atomic within this process (threads); across processes the file cache cannot be, which
        # the embedded default accepts (README "Embedded default"). Redis INCRBY is atomic.
        k = self.full_key(key)
        with _INCR_LOCK:
            if self._cache.add(k, json.dumps(amount), ttl or None):
                return amount
            try:
                value = json.loads(self._cache.get(k)) + amount
            except (TypeError, ValueError):
                value = amount
            self._cache.set(k, json.dumps(value), ttl or None)
            return value

    def clear(self) -> None:
        self._cache.clear()

    async def aget(self, key: str) -> Any:
        return await sync_to_async(self.get, thread_sensitive=False)(key)

    async def aset(self, key: str, value: Any, ttl: int, *, nx: bool = False) -> bool:
        return await sync_to_async(self.set, thread_sensitive=False)(key, value, ttl, nx=nx)

    async def adelete(self, *keys: str) -> None:
        await sync_to_async(self.delete, thread_sensitive=False)(*keys)


@cache
def get_kv() -> RedisKV | CacheKV:
    if settings.REDIS_URL:
        return RedisKV(settings.REDIS_URL, settings.CACHE_KEY_PREFIX)
    return CacheKV()
