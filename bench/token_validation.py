"""Token-validation benchmark: median and p99 of a cache hit and a cache miss, in-process.

Usage (numbers in docs/performance.md came from PostgreSQL + Redis on this machine):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/zz_bench REDIS_URL=redis://127.0.0.1:6379/6 \
        SECRET_KEY=bench WEBHOOK_SIGNING_KEY=bench PAYMENT_WEBHOOK_SECRET=bench \
        .venv/bin/python bench/token_validation.py [--n 20000]

It migrates the database named by DATABASE_URL (use a scratch one), buys one token for a
bench user, then times `avalidate_digest` (the proxy's path) on cache hits and on cache misses
(the entry deleted before each call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")
os.environ.setdefault("ZENZEFI_VAR_DIR", "var/bench")

import django

django.setup()

from decimal import Decimal  # noqa: E402

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from currency.models import TransactionType  # noqa: E402
from currency.services import balance_change  # noqa: E402
from tokens import services, validation  # noqa: E402
from tokens.models import token_digest  # noqa: E402
from zenzefi.kv import get_kv  # noqa: E402


def summarize(name: str, samples_ns: list[int]) -> dict:
    samples_us = sorted(s / 1000 for s in samples_ns)
    p99 = samples_us[int(len(samples_us) * 0.99) - 1]
    row = {"case": name, "n": len(samples_us), "median_us": statistics.median(samples_us), "p99_us": p99}
    print(f"{name:<34} n={row['n']:>6}  median={row['median_us']:8.1f} µs  p99={row['p99_us']:8.1f} µs")
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench", defaults={"email": "bench@bench.local"})
    balance_change(user=user, amount=Decimal("10"), transaction_type=TransactionType.DEPOSIT)
    plaintext = services.token_purchase(user=user, duration_hours=1).plaintext
    key = validation.cache_key(token_digest(plaintext))
    kv = get_kv()
    print(f"database={settings.DATABASES['default']['ENGINE']} kv={type(kv).__name__}")

    def timed(fn, n, before=None):
        samples = []
        for _ in range(n):
            if before:
                before()
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
        return samples

    digest = token_digest(plaintext)

    async def async_hits():
        samples = []
        await validation.avalidate_digest(digest)  # fill
        for _ in range(500):
            await validation.avalidate_digest(digest)
        for _ in range(args.n):
            t0 = time.perf_counter_ns()
            await validation.avalidate_digest(digest)
            samples.append(time.perf_counter_ns() - t0)
        return samples

    rows = [summarize("async cache hit (proxy path)", asyncio.run(async_hits()))]
    misses = max(200, args.n // 20)

    async def async_misses():
        samples = []
        for _ in range(misses):
            await kv.adelete(key)
            t0 = time.perf_counter_ns()
            await validation.avalidate_digest(digest)
            samples.append(time.perf_counter_ns() - t0)
        return samples

    rows.append(summarize("async cache miss (DB + fill)", asyncio.run(async_misses())))
    ok = rows[0]["median_us"] <= 1000
    print(f"budget (cache hit median <= 1 ms): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
