"""Production serving: gunicorn managing uvicorn workers (ASGI), `gunicorn` run from the checkout.

    gunicorn                      # reads this file: zenzefi.asgi:application on $GUNICORN_BIND
    WEB_CONCURRENCY=4 gunicorn    # more workers

Django's pages and API run inside each uvicorn worker on DJANGO_THREADS threads (zenzefi/asgi.py), so
one server serves the proxy (async) and Django (threads) with bounded database connections. The same
file serves WSGI threads for comparison (bench/rest_bench.py):
    gunicorn -c gunicorn.conf.py -k gthread --threads 4 zenzefi.wsgi:application

Every setting can be overridden by environment variables (below) or on the command line. gunicorn
sets TCP_NODELAY on its listening sockets (uvicorn's own `--workers` mode does not, which costs keep-
alive clients ~40 ms per response through delayed ACKs; prefer gunicorn with several workers).
"""

import os

wsgi_app = "zenzefi.asgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One worker per core is right for the async proxy (each worker is one event loop).
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
worker_class = "uvicorn_worker.UvicornWorker"
# Async workers serve many requests at once; this is the heartbeat timeout of a blocked worker,
# not a request timeout (the proxy's upstream timeouts are PROXY_CONNECT_TIMEOUT/PROXY_READ_TIMEOUT).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
# Client addresses from X-Forwarded-For / X-Forwarded-Proto are trusted only from these proxies.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # "-" for stdout
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


# --- Prometheus multiprocess mode (zenzefi/prometheus_multiproc.py, docs/monitoring.md) ------------
# Several workers: each writes its metrics into PROMETHEUS_MULTIPROC_DIR and /metrics sums them all.
# The variable must be set before the workers import prometheus_client: docker-compose.yml sets it;
# otherwise a folder of this master's own is used (and removed when it exits).
_OWN_PROMETHEUS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    _OWN_PROMETHEUS_DIR = os.path.join(tempfile.gettempdir(), f"zenzefi-prometheus-{os.getpid()}")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_PROMETHEUS_DIR


def on_starting(server):
    """Empty the metrics folder: files of an earlier run would add to this run's counters."""
    from zenzefi import prometheus_multiproc

    prometheus_multiproc.on_starting(server)


def child_exit(server, worker):
    """A worker died or was replaced: drop its live gauges (its counters stay in the sums)."""
    from zenzefi import prometheus_multiproc

    prometheus_multiproc.child_exit(server, worker)


def on_exit(server):
    if _OWN_PROMETHEUS_DIR:
        import shutil

        shutil.rmtree(_OWN_PROMETHEUS_DIR, ignore_errors=True)


# --- JSON logs for gunicorn's and uvicorn's own lines (zenzefi/logs.py, docs/operations.md#logs) ---
# With LOG_FORMAT=json set in the environment (docker-compose's env file does), the master's and the
# workers' server lines (boot, timeouts, the access log when GUNICORN_ACCESSLOG is set) are JSON
# with credentials redacted, like the application's.
if os.environ.get("LOG_FORMAT") == "json":
    _json_handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id", "redact"],
        "stream": "ext://sys.stderr",
    }
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "zenzefi.logs.RequestIdFilter"},
            "redact": {"()": "zenzefi.logs.RedactFilter"},
        },
        "formatters": {"json": {"()": "zenzefi.logs.JsonFormatter"}},
        "handlers": {
            "json_stderr": _json_handler,
            "json_stdout": {**_json_handler, "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["json_stderr"], "level": "INFO"},  # replaces gunicorn's default root
        "loggers": {
            "gunicorn.error": {"handlers": ["json_stderr"], "level": loglevel.upper(), "propagate": False},
            # The access log only when asked for (GUNICORN_ACCESSLOG): uvicorn workers copy this
            # logger's handlers, and a JSON line per request cost the event loop ~1 % at 32 connections.
            "gunicorn.access": {
                "handlers": ["json_stdout"] if accesslog else [],
                "level": "INFO",
                "propagate": False,
            },
        },
    }
