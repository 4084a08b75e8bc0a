"""As deployed (issue 12, issue 11 item 3): the API docs work offline, the shipped configuration
trusts no forwarded address from everyone, and the suite never reads a developer's `.env`."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

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
