"""Proxy benchmark (SPEC §19): one run on this machine, everything on 127.0.0.1.

Compares, against the same fast local upstream (bench/upstream.py):
  direct       wrk -> upstream
  proxy-1w     wrk -> gunicorn (gunicorn.conf.py), 1 uvicorn worker (zenzefi.asgi:application) -> upstream
  proxy-2w     wrk -> gunicorn (gunicorn.conf.py), 2 uvicorn workers -> upstream
  uvicorn-2w   wrk -> `uvicorn --workers 2` (uvicorn's own process manager) -> upstream
  uvicorn-1    wrk -> a single `uvicorn` process -> upstream
  revproxy-2w  wrk -> gunicorn, 2 sync workers, django-revproxy (bench/revproxy_site.py) -> upstream
Figures: median/p99 latency at 1 connection, requests/s at 32 connections (+ errors), requests/s
with an upstream answering in 100 ms at 64 connections, and the proxy worker's peak RSS while
streaming a 1 GB response (200 MB first, for comparison), and the server processes' CPU time per
request at 32 connections (less sensitive than requests/s to other load on the machine).

Needs wrk (apt-get install -y wrk) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/5;
keys under the prefix "zzbench"). The platform's database is a throwaway SQLite file under
var/bench-proxy (the proxy's steady state does not touch the database). django-revproxy is
installed into var/bench-venv from bench/requirements.txt on first use.

    python bench/proxy_bench.py [--duration 10] [--json var/bench-proxy/results.json]

Every run is bounded: wrk runs for --duration seconds, servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench-proxy"
BENCH_VENV = ROOT / "var" / "bench-venv"
PY = sys.executable
PORTS = {
    "upstream": 8140,
    "proxy-1w": 8141,
    "proxy-2w": 8142,
    "uvicorn-2w": 8143,
    "uvicorn-1": 8144,
    "revproxy-2w": 8145,
}
# uvicorn's standard extras (uvloop, httptools) are installed (requirements.txt): "auto" picks them.
UVICORN_MODES = {"uvicorn-2w": ["--workers", "2"], "uvicorn-1": []}
DEVICE = "bench-device"


def free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_http(url: str, headers: dict | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (127.0.0.1 only)
            with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310
                resp.read()
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def platform_env(redis_url: str) -> dict:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "ZENZEFI_VAR_DIR": "var/bench-proxy",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
            "WEBHOOK_SIGNING_KEY": "bench-only-webhook-signing-key",
            "PAYMENT_WEBHOOK_SECRET": "bench-only-payment-webhook-secret",
            "DEBUG": "false",
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "zzbench",
            "CELERY_BROKER_URL": "memory://",
            "ZENZEFI_TARGET_URL": f"http://127.0.0.1:{PORTS['upstream']}",
            "BACKEND_URL": "http://127.0.0.1:8000",
            "PROXY_RATE_LIMIT_PER_MINUTE": "0",  # counted, never refused: the benchmark is one token
            "PROXY_MAX_CONCURRENT_PER_TOKEN": "100000",  # counted, never refused
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def prepare_platform(env: dict) -> str:
    """Migrate the throwaway database and issue one 30-day token; returns its plaintext."""
    VAR.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = (
        "from decimal import Decimal\n"
        "from accounts.models import User\n"
        "from tokens.services import token_issue\n"
        "user, _ = User.objects.get_or_create(username='bench', defaults={'email': 'bench@example.com'})\n"
        "print(token_issue(user=user, duration_hours=720, scope='full', cost=Decimal('0')).plaintext)\n"
    )
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def ensure_bench_venv() -> Path:
    gunicorn = BENCH_VENV / "bin" / "gunicorn"
    if not gunicorn.exists():
        subprocess.run([PY, "-m", "venv", str(BENCH_VENV)], check=True)
        pip = BENCH_VENV / "bin" / "pip"
        subprocess.run(
            [str(pip), "install", "-q", "-r", str(ROOT / "bench" / "requirements.txt")], check=True
        )
    return gunicorn


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, cwd: Path = ROOT):
        self.name = name
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

    def pids(self) -> list[int]:
        """The server process and its children (uvicorn/gunicorn workers)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        return [self.proc.pid] + [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def header_args(headers: dict) -> list[str]:
    return [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]


def wrk(url: str, connections: int, duration: int, headers: dict) -> dict:
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    cmd += header_args(headers)
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "non2xx": 0,
        "socket_errors": 0,
    }
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(x) for x in m.groups())
    result["errors"] = result["non2xx"] + result["socket_errors"]
    return result


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def stream_rss(server: Server, url: str, headers: dict, size: int) -> dict:
    """Download `size` bytes through the server while sampling its processes' RSS."""
    pids = server.pids()
    before = sum(rss_kib(p) for p in pids)
    peak = before
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(rss_kib(p) for p in pids))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    started = time.monotonic()
    out = subprocess.run([*cmd, f"{url}/big?size={size}"], capture_output=True, text=True, timeout=300).stdout
    done.set()
    sampler.join()
    got, seconds = out.split()
    return {
        "bytes": int(got),
        "seconds": round(time.monotonic() - started, 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_after_mib": round(sum(rss_kib(p) for p in pids) / 1024, 1),
        "mib_per_s": round(int(got) / float(seconds) / 2**20, 1),
    }


def server_cpu_seconds(server: Server) -> float:
    """user + system CPU of the server and its workers so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in server.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, IndexError):
            pass
    return total / ticks


def measure(name: str, base: str, headers: dict, duration: int, server: Server | None = None) -> dict:
    print(f"== {name}", flush=True)
    for _ in range(2):  # warm-up: sessions, activation, pools, caches
        subprocess.run(
            [
                "wrk",
                "-t1",
                "-c4",
                "-d1s",
                *header_args(headers),
                base + "/small",
            ],
            capture_output=True,
            timeout=30,
        )
    load_before = os.getloadavg()[0]
    out = {"c1": wrk(base + "/small", 1, duration, headers)}
    cpu = server_cpu_seconds(server) if server else None
    out["c32"] = wrk(base + "/small", 32, duration, headers)
    if server:  # the server's own CPU per request at 32 connections
        out["c32"]["server_cpu_ms_per_request"] = round(
            (server_cpu_seconds(server) - cpu) * 1000 / max(1, out["c32"]["requests"]), 3
        )
    out["slow_c64"] = wrk(base + "/slow", 64, duration, headers)
    out["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--json", default=str(VAR / "results.json"))
    parser.add_argument("--skip-revproxy", action="store_true")
    parser.add_argument("--skip-streaming", action="store_true", help="no 200 MB / 1 GB streaming runs")
    parser.add_argument(
        "--modes", default="", help="comma-separated subset of the proxy modes (default: all)"
    )
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    busy = [n for n, p in PORTS.items() if not free(p)]
    if busy:
        sys.exit(f"ports in use: {busy}")

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
    env = platform_env(redis_url)
    token = prepare_platform(env)
    headers = {"X-Access-Token": token, "X-Device-ID": DEVICE}
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    servers: list[Server] = []
    try:
        up = Server("upstream", [PY, "bench/upstream.py", str(PORTS["upstream"])], env)
        servers.append(up)
        upstream = f"http://127.0.0.1:{PORTS['upstream']}"
        wait_http(upstream + "/small")
        results["direct"] = measure("direct", upstream, {}, args.duration, up)

        gunicorn = str(Path(PY).with_name("gunicorn"))
        for name, workers in (("proxy-1w", 1), ("proxy-2w", 2)):
            if args.modes and name not in args.modes:
                continue
            port = PORTS[name]
            # The production configuration: gunicorn.conf.py, uvicorn workers.
            genv = {
                **env,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": str(workers),
                "GUNICORN_LOGLEVEL": "warning",
            }
            server = Server(name, [gunicorn, "-c", "gunicorn.conf.py"], genv)
            servers.append(server)
            base = f"http://127.0.0.1:{port}/api/v1/proxy"
            wait_http(base + "/small", headers)
            results[name] = measure(name, base, headers, args.duration, server)
            if workers == 1 and not args.skip_streaming:
                results[name]["stream_200mb"] = stream_rss(server, base, headers, 200 * 2**20)
                results[name]["stream_1gb"] = stream_rss(server, base, headers, 2**30)
                print(json.dumps({k: results[name][k] for k in ("stream_200mb", "stream_1gb")}), flush=True)
            server.stop()

        uvicorn = str(Path(PY).with_name("uvicorn"))
        for name, extra in UVICORN_MODES.items():
            if args.modes and name not in args.modes:
                continue
            port = PORTS[name]
            cmd = [uvicorn, "zenzefi.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
            cmd += [*extra, "--no-access-log", "--log-level", "warning"]
            server = Server(name, cmd, env)
            servers.append(server)
            base = f"http://127.0.0.1:{port}/api/v1/proxy"
            wait_http(base + "/small", headers)
            results[name] = measure(name, base, headers, args.duration, server)
            server.stop()

        if not args.skip_revproxy:
            gunicorn = ensure_bench_venv()
            port = PORTS["revproxy-2w"]
            renv = {**os.environ, "UPSTREAM": upstream}
            cmd = [
                str(gunicorn),
                "-w",
                "2",
                "-k",
                "sync",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ]
            server = Server("revproxy-2w", [*cmd, "revproxy_site:application"], renv, cwd=ROOT / "bench")
            servers.append(server)
            base = f"http://127.0.0.1:{port}/api/v1/proxy"
            wait_http(base + "/small")
            results["revproxy-2w"] = measure("revproxy-2w", base, {}, args.duration, server)
            server.stop()
    finally:
        for server in servers:
            server.stop()

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(summary(results))


def summary(r: dict) -> str:
    rows = [
        "| setup | median (1 conn) | p99 (1 conn) | req/s (32 conn) | errors "
        "| req/s, 100 ms upstream (64 conn) | server CPU/request (32 conn) |"
    ]
    rows.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("direct", "proxy-1w", "proxy-2w", "uvicorn-2w", "uvicorn-1", "revproxy-2w"):
        if name not in r:
            continue
        m = r[name]
        errors = m["c1"]["errors"] + m["c32"]["errors"] + m["slow_c64"]["errors"]
        rows.append(
            f"| {name} | {m['c1']['p50_ms']:.2f} ms | {m['c1']['p99_ms']:.2f} ms | {m['c32']['rps']:.0f} | "
            f"{errors} | {m['slow_c64']['rps']:.0f} | {m['c32'].get('server_cpu_ms_per_request', '-')} ms |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
