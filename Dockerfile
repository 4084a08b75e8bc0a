# Zenzefi Platform image: web (gunicorn + uvicorn workers), Celery worker and beat all run from it.
# Build:  docker build -t zenzefi-platform .      Run: docker compose up -d (see docs/operations.md)

# --- build stage: dependencies into a virtual environment -------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime stage: the code, the collected static files, a non-root user -------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=zenzefi.settings \
    ZENZEFI_VAR_DIR=/var/lib/zenzefi \
    BACKUP_DIR=/var/lib/zenzefi/backups \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
# postgresql-client: pg_dump/pg_restore for manage.py backup_db / restore_db (major version 15,
# the same as the compose file's PostgreSQL: pg_dump must not be older than the server).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 zenzefi \
    && useradd --system --uid 10001 --gid zenzefi --home-dir /app --shell /usr/sbin/nologin zenzefi
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the app user can read it, not change it.
COPY . /app
# Static files are collected at build time (WhiteNoise serves them); settings need a key to load.
RUN SECRET_KEY=collectstatic-only-build-key WEBHOOK_SIGNING_KEY=build-only PAYMENT_WEBHOOK_SECRET=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
        python manage.py collectstatic --noinput -v0 \
    && rm -f /tmp/build.sqlite3* \
    && mkdir -p /var/lib/zenzefi/backups /tmp/prometheus \
    && chown -R zenzefi:zenzefi /var/lib/zenzefi /tmp/prometheus
USER 10001:10001
EXPOSE 8000
# /health answers from the health-check job's cached result (200 healthy/degraded/unknown, 503 unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# gunicorn.conf.py: uvicorn workers, bind 0.0.0.0:8000 (GUNICORN_BIND), graceful shutdown, Prometheus hooks.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "zenzefi.asgi:application"]
