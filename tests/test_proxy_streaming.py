"""Large bodies stream both ways through the proxy (real uvicorn, real upstream), with checksums."""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.upstream import (  # noqa: F401
    BLOCK,
    big_body_sha256,
    creds,
    customer,
    live_platform,
    proxy,
    token,
    upstream_server,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_200_mb_download_streams_with_checksum(proxy, token):
    _, plain = token
    size = 200 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    received = 0
    with proxy.stream("GET", f"/big?size={size}", headers=creds(plain)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-length"] == str(size)
        for chunk in resp.iter_raw(1024 * 1024):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == big_body_sha256(size)


def test_20_mb_upload_streams_with_checksum(proxy, token, upstream_server):
    _, plain = token
    payload = os.urandom(1024 * 1024)
    expected = hashlib.sha256()
    for _ in range(20):
        expected.update(payload)

    def body():
        for _ in range(20):
            yield payload

    # A generator body: httpx sends it chunked (no Content-Length), the proxy streams it on.
    resp = proxy.post("/upload", content=body(), headers=creds(plain))
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["body_length"] == 20 * 1024 * 1024
    assert seen["body_sha256"] == expected.hexdigest()

    # With a Content-Length the upstream gets the same length, not a chunked body.
    data = BLOCK * 320  # 20 MiB
    resp = proxy.put("/upload", content=data, headers=creds(plain))
    seen = resp.json()
    assert seen["body_length"] == len(data)
    assert seen["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert dict((k.lower(), v) for k, v in seen["headers"])["content-length"] == str(len(data))


def test_client_disconnect_closes_the_upstream_response(proxy, token, upstream_server):
    _, plain = token
    with proxy.stream("GET", f"/big?size={1024**3}", headers=creds(plain)) as resp:
        assert resp.status_code == 200
        stream = resp.iter_raw(65536)
        next(stream)
        next(stream)
    # The client is gone: the proxy closes its upstream connection instead of reading 1 GB.
    deadline = time.monotonic() + 5
    while "big:aborted" not in upstream_server.events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "big:aborted" in upstream_server.events
    # ... and keeps serving.
    assert proxy.get("/echo/after", headers=creds(plain)).status_code == 200
