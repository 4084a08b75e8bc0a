"""Admission: who is asking, and may they go through now.

1. Credentials: the desktop client's `X-Access-Token` + `X-Device-ID` (400/401), or a browser-mode
   cookie session (`proxy.browser`) that maps to a token digest and device.
2. One kv round trip (`proxy.state.admit`): the token's validation entry, this request counted in
   the token's minute and in its requests in flight, and the token's active session record.
3. `admit`: the rate limit (429 `rate_limited`, audited once per token and minute), the in-flight
   cap (429 `too_many_concurrent`), then the device rule.
4. `claim`, once the upstream answered: the device takes (or starts, or takes over) the session.

The device rule (one token = one device; SPEC §8) is `_device_rule`, the one place every path
asks it: a session seen within SESSION_IDLE_MINUTES belongs to its device, another device gets 409
`device_conflict` (audited, flagged suspicious, once per device and minute); an idle or missing
session is free.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from datetime import UTC, datetime
from itertools import count as _counter

from django.conf import settings

from proxy import services
from proxy.clock import clock
from proxy.database import db_call
from proxy.request import Ctx
from proxy.responses import ProxyError
from proxy.state import device_key, get_state
from tokens.models import token_digest
from tokens.validation import (
    EXPIRED,
    INACTIVE_USER,
    MAX_TOKEN_LENGTH,
    REVOKED,
    UNKNOWN,
    TokenCheck,
    avalidate_digest,
    cache_key,
    check_cached,
)
from zenzefi.kv import get_kv
from zenzefi.kvkeys import proxy_claim_key, proxy_conflict_key
from zenzefi.metrics import rate_limit_hits_total

logger = logging.getLogger("proxy")

DEVICE_RE = re.compile(r"[\x21-\x7e]{1,128}")
INFLIGHT_WINDOW = 600  # seconds an in-flight entry counts at most (a crashed worker's entries fade)
REASON_DETAIL = {
    UNKNOWN: "Unknown access token.",
    REVOKED: "This access token has been revoked.",
    EXPIRED: "This access token has expired.",
    INACTIVE_USER: "The owner of this access token is deactivated.",
}
_MEMBER_TAG = uuid.uuid4().hex[:8]
_member_seq = _counter()
_proxy_hits = rate_limit_hits_total.labels(scope="proxy")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


class Admission:
    """Who is asking (a valid token and the device) and what the kv said in the same round trip."""

    __slots__ = ("check", "count", "device", "digest", "inflight", "member", "record")

    def __init__(self, check: TokenCheck, device: str, digest: str, count: int, record: dict | None):
        self.check, self.device, self.digest, self.count, self.record = check, device, digest, count, record
        self.inflight = 0
        self.member: str | None = None  # this request's entry in the token's in-flight set


class _StartLocks:
    """One asyncio.Lock per token digest while a session start is under way in this process (the
    file cache's add() is not atomic between threads); counted by its users, dropped by the last."""

    def __init__(self) -> None:
        self._locks: dict[str, list] = {}  # digest -> [lock, users]

    async def run(self, digest: str, fn):
        entry = self._locks.get(digest)
        if entry is None:
            entry = self._locks[digest] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                return await fn()
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._locks.get(digest) is entry:
                del self._locks[digest]

    def __len__(self) -> int:
        return len(self._locks)


class Gate:
    """Admission state of one worker: the session-start locks, the in-flight releases waiting for
    their batch, and whether the kv is known to be down (logged once per outage)."""

    def __init__(self) -> None:
        self.start_locks = _StartLocks()
        self._releases: list[tuple[str, str]] = []  # in-flight entries to leave (batched)
        self._tasks: set[asyncio.Task] = set()
        self._kv_outage = False

    # --- the kv's health, as the proxy saw it
    def kv_down(self, exc: BaseException) -> None:
        if not self._kv_outage:
            self._kv_outage = True
            logger.error("proxy: the key-value store (Redis) is unreachable: %s", exc)

    # --- credentials and the round trip
    async def authenticate(self, token: str | None, device: str | None, *, member: bool = False) -> Admission:
        """The desktop client's headers: token and device. 400/401 on bad credentials."""
        if not token:
            raise ProxyError(401, UNKNOWN, "An access token is required (X-Access-Token).")
        if not device:
            raise ProxyError(400, "device_id_required", "The X-Device-ID header is required.")
        if not DEVICE_RE.fullmatch(device):
            raise ProxyError(400, "device_id_invalid", "X-Device-ID must be 1-128 printable characters.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise ProxyError(401, UNKNOWN, REASON_DETAIL[UNKNOWN])
        return await self.admission(token_digest(token), device, member)

    async def admission(self, digest: str, device: str, member: bool) -> Admission:
        """The kv round trip that reads the validation entry, counts the request (rate limit and,
        for a forwarded request, the token's requests in flight) and reads the active session."""
        tag = f"{_MEMBER_TAG}:{next(_member_seq)}" if member else None
        cached, count, record, inflight = await get_state().admit(
            digest, int(clock.time() // 60), cache_key(digest), tag, INFLIGHT_WINDOW
        )
        if self._kv_outage:
            self._kv_outage = False
            logger.warning("proxy: the key-value store (Redis) is reachable again")
        adm = None
        try:
            check = check_cached(cached, digest) if cached is not None else await avalidate_digest(digest)
            if not check.valid:
                reason = check.reason or UNKNOWN
                raise ProxyError(401, reason, REASON_DETAIL.get(reason, "Invalid access token."))
            adm = Admission(check, device, digest, count, record)
            adm.inflight, adm.member = inflight, tag
            return adm
        finally:
            if adm is None and tag is not None:
                self._release_member(digest, tag)

    # --- requests in flight
    def release(self, adm: Admission) -> None:
        if adm.member is not None:
            self._release_member(adm.digest, adm.member)
            adm.member = None

    def _release_member(self, digest: str, tag: str) -> None:
        """Take this request out of the token's in-flight set, whatever way it ended. Batched:
        the requests that end in one turn of the event loop leave in one pipeline, from a task of
        its own (it runs even when the request's task is being cancelled)."""
        self._releases.append((digest, tag))
        if len(self._releases) == 1:
            asyncio.get_running_loop().call_soon(self._release_soon)

    def _release_soon(self) -> None:
        entries, self._releases = self._releases, []
        if entries:
            task = asyncio.ensure_future(self._release_now(entries))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _release_now(entries: list[tuple[str, str]]) -> None:
        try:
            await get_state().release_many(entries)
        except Exception as exc:  # the entries fade after INFLIGHT_WINDOW anyway
            logger.warning("proxy: could not release %d in-flight entries: %r", len(entries), exc)

    # --- the rules
    async def admit(self, adm: Admission, ctx: Ctx) -> dict | None:
        """Rate limit, requests in flight, then the device rule. Returns the device's active
        session record (None when no session is active), raises 429/409 otherwise. Claims
        nothing: only a request the upstream answered claims the device (`claim`)."""
        now = clock.time()
        check = adm.check
        limit = settings.PROXY_RATE_LIMIT_PER_MINUTE
        if limit and adm.count > limit:
            _proxy_hits.inc()
            if adm.count == limit + 1:  # audit once per token and window, not once per refused request
                await db_call(services.audit_rate_limit)(
                    token_id=check.token_id,
                    user_id=check.user_id,
                    limit=limit,
                    ip=ctx.ip,
                    user_agent=ctx.user_agent,
                )
            retry = str(max(1, 60 - int(now % 60))).encode()
            raise ProxyError(
                429, "rate_limited", "Too many requests for this token.", [(b"retry-after", retry)]
            )
        cap = settings.PROXY_MAX_CONCURRENT_PER_TOKEN
        if cap and adm.member is not None and adm.inflight > cap:
            _proxy_hits.inc()
            raise ProxyError(
                429,
                "too_many_concurrent",
                f"At most {cap} requests at a time per access token.",
                [(b"retry-after", b"1")],
            )
        return await self._device_rule(adm, adm.record, ctx, now)

    async def _device_rule(self, adm: Admission, record: dict | None, ctx: Ctx, now: float) -> dict | None:
        """One token = one device. The session `record` if it is active (a request within
        SESSION_IDLE_MINUTES) and this device's; None if no session is active (anyone may start
        one); 409 `device_conflict` if another device holds it."""
        idle = settings.SESSION_IDLE_MINUTES * 60
        if not record or now - record["ts"] >= idle:
            return None
        if record["dev"] == adm.device:
            return record
        check = adm.check
        if await get_kv().aset(proxy_conflict_key(adm.digest, _hash(adm.device)), 1, 60, nx=True):
            await db_call(services.device_conflict_record)(
                token_id=check.token_id,
                user_id=check.user_id,
                device_id=adm.device,
                active_device=record["dev"],
                ip=ctx.ip,
                user_agent=ctx.user_agent,
            )
        wait = max(1, int(idle - (now - record["ts"])) + 1)
        raise ProxyError(
            409,
            "device_conflict",
            "This access token is in use on another device. It becomes free after "
            f"{settings.SESSION_IDLE_MINUTES} minutes without requests from that device.",
            [(b"retry-after", str(wait).encode())],
        )

    async def claim(self, adm: Admission, ctx: Ctx) -> dict:
        """The upstream answered: claim the device (start or take over the session). In-process
        lock first, then the kv claim between processes."""
        return await self.start_locks.run(adm.digest, lambda: self._start_session(adm, ctx))

    async def _start_session(self, adm: Admission, ctx: Ctx) -> dict:
        """Only one request starts a token's session (a short kv lock); concurrent first requests
        of the same device wait for it and join, another device gets 409."""
        kv = get_kv()
        claim = proxy_claim_key(adm.digest)
        key = device_key(adm.digest)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while True:
            if await kv.aset(claim, adm.device, 10, nx=True):
                try:
                    now = clock.time()
                    record = await self._device_rule(adm, await kv.aget(key), ctx, now)
                    if record is not None:
                        return record
                    sid = uuid.uuid4().hex
                    await db_call(services.session_start)(
                        token_id=adm.check.token_id,
                        user_id=adm.check.user_id,
                        device_id=adm.device,
                        key=sid,
                        ip=ctx.ip,
                        user_agent=ctx.user_agent,
                        now=datetime.fromtimestamp(now, tz=UTC),
                    )
                    record = {"dev": adm.device, "sid": sid, "tid": adm.check.token_id, "st": now, "ts": now}
                    await kv.aset(key, record, settings.SESSION_IDLE_MINUTES * 60 + 600)
                    return record
                finally:
                    await kv.adelete(claim)
            if loop.time() > deadline:
                raise ProxyError(
                    503, "session_busy", "The session is starting; retry.", [(b"retry-after", b"1")]
                )
            await asyncio.sleep(0.02)
            record = await self._device_rule(adm, await kv.aget(key), ctx, clock.time())
            if record is not None:
                return record
