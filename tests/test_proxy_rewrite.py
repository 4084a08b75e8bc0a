"""URL rewriting, path rules and protocol edges of the proxy, without servers or database."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from proxy.headers import accept_encoding
from proxy.paths import scope_allows, upstream_path
from proxy.rewrite import BodyRewriter, rewriter

PROXY = "https://zz.example.com/api/v1/proxy"


@pytest.fixture
def rw():
    return rewriter("http://127.0.0.1:9000", "https://zz.example.com/")


SOURCE = (
    b'<a href="http://127.0.0.1:9000/a">x</a> //127.0.0.1:9000/b https://127.0.0.1:9000/c '
    b'http://127.0.0.1:90001/d "http:\\/\\/127.0.0.1:9000\\/e" HTTP://127.0.0.1:9000 '
    b"http://127.0.0.1:9000.evil.com/ xhttp://127.0.0.1:9000/ http://127.0.0.1:9000"
)
EXPECTED = (
    b'<a href="https://zz.example.com/api/v1/proxy/a">x</a> https://zz.example.com/api/v1/proxy/b '
    b"https://127.0.0.1:9000/c http://127.0.0.1:90001/d "
    b'"https:\\/\\/zz.example.com\\/api\\/v1\\/proxy\\/e" https://zz.example.com/api/v1/proxy '
    b"http://127.0.0.1:9000.evil.com/ xhttp://127.0.0.1:9000/ https://zz.example.com/api/v1/proxy"
)


def test_body_rewrite_at_every_chunk_boundary(rw):
    for cut in range(len(SOURCE) + 1):
        for cut2 in (cut, min(len(SOURCE), cut + 7)):
            body = BodyRewriter(rw)
            out = (
                body.feed(SOURCE[:cut])
                + body.feed(SOURCE[cut:cut2])
                + body.feed(SOURCE[cut2:])
                + body.flush()
            )
            assert out == EXPECTED, (cut, cut2)


def test_body_rewrite_one_byte_at_a_time(rw):
    body = BodyRewriter(rw)
    out = b"".join(body.feed(SOURCE[i : i + 1]) for i in range(len(SOURCE))) + body.flush()
    assert out == EXPECTED


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"raw-deflate"])
def test_compressed_body_is_decoded_and_rewritten(rw, encoding):
    if encoding == b"gzip":
        data = gzip.compress(SOURCE * 50)
    else:
        wbits = -zlib.MAX_WBITS if encoding == b"raw-deflate" else zlib.MAX_WBITS
        packer = zlib.compressobj(wbits=wbits)
        data = packer.compress(SOURCE * 50) + packer.flush()
        encoding = b"deflate"
    body = BodyRewriter(rw, encoding)
    out = b"".join(body.feed(data[i : i + 13]) for i in range(0, len(data), 13)) + body.flush()
    assert out == EXPECTED * 50


def test_location_and_cookies(rw):
    assert rw.location("http://127.0.0.1:9000/login?x=1") == f"{PROXY}/login?x=1"
    assert rw.location("http://127.0.0.1:9000") == f"{PROXY}/"
    assert rw.location("//127.0.0.1:9000/p") == f"{PROXY}/p"
    assert rw.location("/root-relative") == f"{PROXY}/root-relative"
    assert rw.location("relative/path") == "relative/path"
    assert rw.location("http://127.0.0.1:90001/x") == "http://127.0.0.1:90001/x"
    assert rw.location("https://other.example/") == "https://other.example/"
    assert rw.set_cookie(b"a=1; Domain=127.0.0.1; Path=/; HttpOnly") == b"a=1; Path=/api/v1/proxy/; HttpOnly"
    assert rw.set_cookie(b"b=2; domain=.x; path=/app; Secure") == b"b=2; Path=/api/v1/proxy/app; Secure"
    assert rw.set_cookie(b"c=3") == b"c=3"


def test_proxy_origin_rewrite():
    """Browser mode: absolute upstream URLs become PROXY_ORIGIN/…, root-relative ones stay."""
    rw = rewriter("http://127.0.0.1:9000", "http://localhost:8000", "")
    assert rw.location("http://127.0.0.1:9000/login?x=1") == "http://localhost:8000/login?x=1"
    assert rw.location("/root-relative") == "/root-relative"
    assert rw.set_cookie(b"a=1; Domain=127.0.0.1; Path=/app; HttpOnly") == b"a=1; Path=/app; HttpOnly"
    body = BodyRewriter(rw)
    out = body.feed(b'<a href="http://127.0.0.1:9000/a">x</a><a href="/b">') + body.flush()
    assert out == b'<a href="http://localhost:8000/a">x</a><a href="/b">'
    base = rewriter("https://zen.local/base/", "https://proxy.example.com", "")
    assert base.location("/base/y") == "/y"


def test_upstream_with_a_base_path():
    rw = rewriter("https://zen.local/base/", "https://zz.example.com")
    assert rw.location("https://zen.local/base/x") == f"{PROXY}/x"
    assert rw.location("/base/y") == f"{PROXY}/y"
    body = BodyRewriter(rw)
    out = (
        body.feed(b'"https://zen.local/base/x" "https://zen.local/basement" https://zen.local:443/base/z')
        + body.flush()
    )
    assert out == f'"{PROXY}/x" "https://zen.local/basement" {PROXY}/z'.encode()


def test_paths_and_scope():
    prefix = b"/api/v1/proxy"
    assert upstream_path(prefix + b"/a/b/../c") == ("/a/c", [b"a", b"c"])
    assert upstream_path(prefix + b"/a/./b/") == ("/a/b/", [b"a", b"b", b""])
    assert upstream_path(prefix + b"/a%20b/c%2Fd")[0] == "/a%20b/c%2Fd"
    assert upstream_path(prefix + b"/../x") is None
    assert upstream_path(prefix + b"/a/%2E%2E/%2e%2e/x") is None
    ok = upstream_path(prefix + b"/certificates/list")[1]
    assert scope_allows("certificates_only", ok) and scope_allows("full", ok)
    for path in (
        b"/certificates",
        b"/certificatesX/a",
        b"/other/certificates/a",
        b"/certificates/a%2Fx",
    ):
        assert not scope_allows("certificates_only", upstream_path(prefix + path)[1]), path
    assert not scope_allows("certificates_only", upstream_path(prefix + b"/certificates/a%5Cx")[1])
    assert not scope_allows(None, ok)


# Path parameters and encodings as Tomcat/Spring read them (issue 11, item 4): every way of
# writing ".." other than the literal one is refused, wherever it sits.
JAVA_ESCAPES = [
    b"/certificates/..;/admin",
    b"/certificates/..;jsessionid=x/admin",
    b"/certificates/..%3b/admin",
    b"/certificates/..%3B/admin",
    b"/certificates/%2e%2e;/admin",
    b"/certificates/%2e%2e%3b/admin",
    b"/certificates/%2e%2e/admin",
    b"/certificates/%252e%252e/admin",
    b"/certificates/%252e%252e%253b/admin",
    b"/certificates/.%2e/admin",
    b"/certificates/..%2fadmin",
    b"/certificates/..%2Fadmin",
    b"/certificates/..%252fadmin",
    b"/certificates/..%5cadmin",
    b"/certificates/..\\admin",
    b"/certificates/a%2F..%2F..%2Fadmin",
    b"/certificates/.;/../../admin",
    b"/certificates/%2e;x/admin",
    b"/..;/certificates/x",
    b"/../certificates/x",
    b"/certificates/../../x",
]


@pytest.mark.parametrize("path", JAVA_ESCAPES)
def test_java_path_parameter_escapes_are_refused(path):
    assert upstream_path(b"/api/v1/proxy" + path) is None, path


def test_java_path_parameters_are_read_as_java_reads_them():
    prefix = b"/api/v1/proxy"
    # A parameter ends the segment's name for the scope check; the client's segment goes through.
    path, names = upstream_path(prefix + b"/certificates;jsessionid=abc/list;v=1")
    assert path == "/certificates;jsessionid=abc/list;v=1" and names == [b"certificates", b"list"]
    assert scope_allows("certificates_only", names)
    # An encoded ";" is part of the name for Tomcat: "certificates;x" is not "certificates".
    assert not scope_allows("certificates_only", upstream_path(prefix + b"/certificates%3bx/a")[1])
    # Literal dot segments are resolved before the scope check.
    path, names = upstream_path(prefix + b"/certificates/../admin")
    assert path == "/admin" and not scope_allows("certificates_only", names)
    path, names = upstream_path(prefix + b"/certificates/a/../b")
    assert path == "/certificates/b" and scope_allows("certificates_only", names)


def test_accept_encoding_keeps_only_decodable_codings():
    assert accept_encoding("gzip, deflate, br, zstd") == "gzip, deflate"
    assert accept_encoding("br") == "identity"
    assert accept_encoding("gzip;q=1.0, identity; q=0.5, *;q=0") == "gzip;q=1.0, identity; q=0.5"


@pytest.mark.parametrize("denial", [True, False])
def test_websocket_scope_is_refused_with_501(denial):
    from zenzefi.asgi import application

    sent = []
    messages = [{"type": "websocket.connect"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/api/v1/proxy/ws",
        "headers": [],
        "extensions": {"websocket.http.response": {}} if denial else {},
    }
    asyncio.run(application(scope, receive, send))
    if denial:
        assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 501
        assert b"websocket_unsupported" in sent[1]["body"]
    else:
        assert sent == [{"type": "websocket.close", "code": 1008}]
