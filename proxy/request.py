"""A request as the proxy sees it: the credentials and framing read from its head, and the
per-request bookkeeping (client address, bytes both ways, how it ended)."""

from __future__ import annotations

from proxy.responses import ProxyError


class Head:
    """What the proxy reads from the client's headers before anything else."""

    __slots__ = ("device", "has_body", "sid", "token", "user_agent")

    def __init__(self) -> None:
        self.token: str | None = None
        self.device: str | None = None
        self.sid: str | None = None  # browser mode: the proxy cookie's value
        self.user_agent = ""
        self.has_body = False


def read_head(scope, cookie: bytes | None = None) -> Head:
    """The access token, device id, user agent and (given the `cookie` name: browser mode) that
    cookie's value; whether a body follows. A WebSocket upgrade is 501; Content-Length with
    Transfer-Encoding is 400 (request smuggling: never guess which framing the client meant)."""
    head = Head()
    has_length = chunked = False
    for name, value in scope["headers"]:
        if name == b"x-access-token":
            head.token = value.decode("latin-1").strip()
        elif name == b"x-device-id":
            head.device = value.decode("latin-1").strip()
        elif name == b"cookie" and cookie is not None and head.sid is None:
            head.sid = cookie_value(value, cookie)
        elif name == b"user-agent":
            head.user_agent = value.decode("latin-1")
        elif name == b"content-length":
            has_length = True
            head.has_body = value.strip() not in (b"0", b"")
        elif name == b"transfer-encoding":
            head.has_body = chunked = True
        elif name == b"upgrade" and b"websocket" in value.lower():
            raise ProxyError(501, "websocket_unsupported", "WebSocket is not supported by the proxy.")
    if has_length and chunked:
        raise ProxyError(
            400,
            "invalid_request",
            "Content-Length and Transfer-Encoding must not be sent together.",
            [(b"connection", b"close")],
        )
    return head


def cookie_value(header: bytes, name: bytes) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    for part in header.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name and value:
            return value.decode("latin-1")
    return None


class Ctx:
    """Per-request bookkeeping."""

    __slots__ = (
        "body_done",
        "body_timeout",
        "bytes_in",
        "bytes_out",
        "client_gone",
        "done",
        "ip",
        "reported_in",
        "reported_out",
        "user_agent",
    )

    def __init__(self, ip: str | None, user_agent: str):
        self.ip = ip
        self.user_agent = user_agent
        self.bytes_in = self.bytes_out = self.reported_in = self.reported_out = 0
        self.body_done = True
        self.body_timeout = False
        self.client_gone = False
        self.done = False
