"""`/health` benchmark (SPEC §19: ≤ 5 ms median): sequential requests over one keep-alive connection
to a real uvicorn server, after one health-check run has stored a result.

Usage (embedded default, or with DATABASE_URL / REDIS_URL of scratch services):

    SECRET_KEY=bench .venv/bin/python bench/health.py [--n 2000] [--port 8071]

It runs `manage.py health_check` (storing the result the endpoints read), starts uvicorn with
`--app` (default `zenzefi.asgi:application`) on 127.0.0.1, times `/health` and `/health/detailed`,
prints the median and p99, and stops the server.

Measured here (2 cores shared with other work, load average ~5, one connection): through Django's
middleware stack 6–8 ms median (each sync middleware hook is a thread hop under ASGI); through the
lean path `monitoring.views.health_asgi` 1.1 ms (file cache) and 1.6–2.3 ms (Redis). The lean path is
what `zenzefi/asgi.py` should route `HEALTH_PATHS` to.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def wait_up(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def timed(client: httpx.Client, url: str, n: int) -> list[float]:
    for _ in range(200):  # warm up
        client.get(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code in (200, 503), response.status_code
    return sorted(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8071)
    parser.add_argument("--app", default="zenzefi.asgi:application", help="the ASGI app to serve")
    args = parser.parse_args()
    env = {
        **os.environ,
        "ZENZEFI_VAR_DIR": os.environ.get("ZENZEFI_VAR_DIR", "var/bench-health"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key"),
        "WEBHOOK_SIGNING_KEY": "bench-only-webhook-signing-key",
        "PAYMENT_WEBHOOK_SECRET": "bench-only-payment-webhook-secret",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "health_check", "-v0"], cwd=ROOT, env=env, check=False)
    command = [python, "-m", "uvicorn", args.app, "--port", str(args.port)]
    server = subprocess.Popen(
        [*command, "--lifespan", "off", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_up(f"{base}/health", server)
        with httpx.Client(base_url=base, timeout=5) as client:
            print(f"status: {client.get('/health').json()['status']} (n={args.n}, one keep-alive connection)")
            for path in ("/health", "/health/detailed"):
                samples = timed(client, path, args.n)
                p99 = samples[int(len(samples) * 0.99) - 1]
                print(f"{path:<18} median={statistics.median(samples):6.2f} ms  p99={p99:6.2f} ms")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
