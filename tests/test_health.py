import pytest
from django.test import override_settings

from monitoring import health
from monitoring.tasks import run_health_checks
from tests import jobs_support
from tests.jobs_support import closed_port_url
from zenzefi.kv import get_kv

# Shared fixtures (tests/jobs_support.py).
upstream = jobs_support.upstream

pytestmark = pytest.mark.django_db


def test_nothing_cached_yet_is_unknown_200(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "unknown", "checked_at": None}
    detailed = client.get("/health/detailed")
    assert detailed.status_code == 200 and detailed.json()["components"] == {}


def test_all_up_is_healthy(client, upstream, django_assert_num_queries):
    with override_settings(ZENZEFI_TARGET_URL=upstream.url):
        assert run_health_checks.apply().get() == "healthy"
    assert len(upstream.received) == 1
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "healthy"
    assert response.json()["checked_at"]
    detailed = client.get("/health/detailed").json()
    assert set(detailed["components"]) == {"database", "cache", "broker", "upstream"}
    for name, component in detailed["components"].items():
        assert component["status"] == "healthy", (name, component)
        assert component["response_time_ms"] >= 0
    assert detailed["components"]["upstream"]["status_code"] == 200


def test_upstream_down_is_unhealthy_503(client):
    with override_settings(ZENZEFI_TARGET_URL=closed_port_url()):
        result = health.health_check_run()
    assert result["status"] == "unhealthy"
    upstream_result = result["components"]["upstream"]
    assert upstream_result["status"] == "unhealthy" and "ConnectError" in upstream_result["error"]
    assert client.get("/health").status_code == 503
    detailed = client.get("/health/detailed")
    assert detailed.status_code == 503
    assert detailed.json()["components"]["database"]["status"] == "healthy"
    assert health.health_cached()["components"]["upstream"]["status"] == "unhealthy"


def test_upstream_5xx_is_degraded_200(client, upstream):
    upstream.statuses = [502]
    with override_settings(ZENZEFI_TARGET_URL=upstream.url):
        result = health.health_check_run()
    assert result["components"]["upstream"] == {
        **result["components"]["upstream"],
        "status": "degraded",
        "error": "HTTP 502",
    }
    assert result["status"] == "degraded"
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert health.health_cached()["components"]["upstream"]["status"] == "degraded"


def test_slow_upstream_is_degraded(upstream):
    upstream.delay = 0.3
    with override_settings(ZENZEFI_TARGET_URL=upstream.url, HEALTH_DEGRADED_MS=100):
        result = health.health_check_run()
    assert result["components"]["upstream"]["status"] == "degraded"
    assert result["components"]["upstream"]["error"].startswith("slow")


def test_upstream_timeout_is_unhealthy(upstream):
    upstream.delay = 2
    with override_settings(ZENZEFI_TARGET_URL=upstream.url, HEALTH_CHECK_TIMEOUT=0.3):
        result = health.health_check_run()
    assert result["components"]["upstream"]["status"] == "unhealthy"
    assert "Timeout" in result["components"]["upstream"]["error"]


def test_overall_status_rules():
    ok = {"status": "healthy"}
    assert health.overall_status({"database": ok, "cache": ok, "broker": ok, "upstream": ok}) == "healthy"
    assert health.overall_status({"database": {"status": "unhealthy"}, "upstream": ok}) == "unhealthy"
    assert health.overall_status({"cache": {"status": "degraded"}, "upstream": ok}) == "degraded"
    # The broker is not critical to the web: down means degraded, not unhealthy.
    assert health.overall_status({"database": ok, "broker": {"status": "unhealthy"}}) == "degraded"


def test_result_expires_with_ttl(client, upstream):
    with override_settings(ZENZEFI_TARGET_URL=upstream.url, HEALTH_CACHE_TTL=1):
        health.health_check_run()
    assert client.get("/health").json()["status"] == "healthy"
    get_kv().delete(health.HEALTH_KEY)  # what the TTL does after 120 s
    assert client.get("/health").json()["status"] == "unknown"


def test_running_twice_overwrites(upstream):
    with override_settings(ZENZEFI_TARGET_URL=upstream.url):
        first = health.health_check_run()
        second = health.health_check_run()
    assert health.health_cached()["checked_at"] == second["checked_at"] >= first["checked_at"]


def test_health_check_command(client, upstream):
    from django.core.management import CommandError, call_command

    with override_settings(ZENZEFI_TARGET_URL=upstream.url):
        call_command("health_check", verbosity=0)
    assert client.get("/health").json()["status"] == "healthy"
    with (
        override_settings(ZENZEFI_TARGET_URL=closed_port_url()),
        pytest.raises(CommandError, match="upstream"),
    ):
        call_command("health_check", verbosity=0)
    assert client.get("/health").status_code == 503


def _asgi_get(path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from monitoring.views import health_asgi

    async def call():
        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
        comm = ApplicationCommunicator(health_asgi, scope)
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await comm.receive_output(5)
        body = await comm.receive_output(5)
        return start["status"], dict(start["headers"]), body["body"]

    return async_to_sync(call)()


def test_lean_asgi_path_answers_the_same(client, upstream):
    import json

    status, headers, body = _asgi_get("/health")
    assert status == 200 and json.loads(body) == {"status": "unknown", "checked_at": None}
    assert headers[b"content-type"] == b"application/json" and b"no-store" in headers[b"cache-control"]
    with override_settings(ZENZEFI_TARGET_URL=upstream.url):
        health.health_check_run()
    status, _, body = _asgi_get("/health/detailed")
    assert status == 200 and json.loads(body) == client.get("/health/detailed").json()
    with override_settings(ZENZEFI_TARGET_URL=closed_port_url()):
        health.health_check_run()
    status, _, body = _asgi_get("/health")
    assert status == 503 and json.loads(body)["status"] == "unhealthy"
    status, _, body = _asgi_get("/health", method="HEAD")
    assert status == 503 and body == b""
    status, headers, _ = _asgi_get("/health", method="POST")
    assert status == 405 and headers[b"allow"] == b"GET, HEAD"
