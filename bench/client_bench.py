"""Which async HTTP client for the proxy's upstream leg? httpx vs aiohttp, same loop, same upstream.

Starts bench/upstream.py, then for each client runs CONCURRENCY tasks doing GET /small in a loop
for a fixed number of requests, and reports requests/s and CPU milliseconds per request of this
process (the client's own cost; the upstream runs in another process).

    python bench/client_bench.py [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
PORT = 19111
URL = f"http://127.0.0.1:{PORT}/small"


async def run(get, total: int, concurrency: int) -> dict:
    remaining = total

    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await get()

    for _ in range(200):  # warm-up
        await get()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rps": round(total / wall), "cpu_ms_per_request": round(cpu / total * 1000, 3)}


async def bench_httpx(total: int, concurrency: int) -> dict:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=10) as client:

        async def get():
            async with client.stream("GET", URL) as resp:
                async for _ in resp.aiter_raw():
                    pass

        return await run(get, total, concurrency)


async def bench_aiohttp(total: int, concurrency: int) -> dict:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False
    ) as session:

        async def get():
            async with session.get(URL) as resp:
                async for _ in resp.content.iter_any():
                    pass

        return await run(get, total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    upstream = subprocess.Popen([sys.executable, str(ROOT / "bench" / "upstream.py"), str(PORT)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(URL, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        results = {}
        for name, fn in (("httpx", bench_httpx), ("aiohttp", bench_aiohttp)):
            results[name] = asyncio.run(fn(args.requests, args.concurrency))
            print(name, json.dumps(results[name]), flush=True)
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
