"""As deployed (issue 12, issue 11 item 3): the API docs work offline, the shipped configuration
trusts no forwarded address from everyone, and the suite never reads a developer's `.env`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

BASE_DIR = Path(settings.BASE_DIR)

pytestmark = pytest.mark.django_db

EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost|testserver)[a-z0-9.-]+\.[a-z]{2,}""", re.I)


@pytest.mark.parametrize("path", ["/api/docs/"])
def test_api_docs_reference_no_external_host(client, path):
    response = client.get(path, HTTP_HOST="localhost")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file of ours"
    # Swagger UI would ask swagger.io's online validator for a badge: switched off.
    assert '"validatorUrl": null' in html


# --- The test command never reads a developer's .env; pytest running no test fails ---------------------


def _settings_in_subprocess(env: dict[str, str], expression: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    env = {**env, "DJANGO_SETTINGS_MODULE": "zenzefi.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_suite_never_reads_the_dotenv_that_start_writes():
    assert os.environ["ZENZEFI_READ_DOTENV"] == "false"  # pytest.ini sets it, not as a default
    dotenv = BASE_DIR / ".env"
    if dotenv.exists():
        # A developer's own .env: this run is the proof that it was not read.
        pytest.skip("a .env exists here; the fresh-clone check (scripts/smoke, CI) covers the write")
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_URL", "DEMO_USER_PASSWORD")}
    try:
        dotenv.write_text("BACKEND_URL=http://dotenv.invalid:8100\nDEMO_USER_PASSWORD=from-dotenv\n")
        assert _settings_in_subprocess(env, "settings.BACKEND_URL") != "http://dotenv.invalid:8100"
        env_reading = {k: v for k, v in env.items() if k != "ZENZEFI_READ_DOTENV"}
        assert _settings_in_subprocess(env_reading, "settings.BACKEND_URL") == "http://dotenv.invalid:8100"
    finally:
        dotenv.unlink(missing_ok=True)


def test_the_test_command_fails_when_no_test_runs():
    command = ["./scripts/test", "tests/test_as_deployed.py", "-k", "no_such_test_zz", "-q"]
    result = subprocess.run(
        command,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no test ran; that is a failure" in result.stderr
