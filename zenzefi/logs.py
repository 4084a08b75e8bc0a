"""Log formatting for operators: JSON lines in production (LOG_FORMAT), the request id on every
line, and no secrets: credentials are redacted before a line is written.

Wired in `settings.LOGGING`: the console handler carries `RequestIdFilter` and `RedactFilter`, and
its formatter is `JsonFormatter` or `PlainFormatter`. Both formatters redact once more what a filter
cannot see (exception tracebacks, `extra=` values formatted late).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from zenzefi.request_id import current_request_id

REDACTED = "[REDACTED]"

# Header-style credentials: "Authorization: Bearer abc", "X-Access-Token: abc", "Cookie: …" (also
# as "authorization=…" or a quoted dict/JSON key). The value runs to the end of the quoted string
# or of the line: more is redacted rather than less.
_HEADER_NAMES = (
    r"authorization|proxy-authorization|x-access-token|http_x_access_token|http_authorization"
    r"|cookie|set-cookie"
)
_HEADER_RE = re.compile(
    rf"""(?P<key>["']?(?:{_HEADER_NAMES})["']?\s*[:=]\s*)(?P<quote>["']?)(?P<value>[^"'\r\n]+)(?P=quote)""",
    re.IGNORECASE,
)
# Query-string and key=value credentials: token=…, access_token=…, refresh=…, password=…, secret=….
_PARAM_RE = re.compile(
    r"(?P<key>\b(?:[a-z_]*token|refresh|access|password|passwd|secret|api_key|apikey|signature)"
    r"""["']?\s*[=:]\s*["']?)(?P<value>[^\s&"',;}]+)""",
    re.IGNORECASE,
)
# Bare bearer tokens and JWTs wherever they appear.
_BEARER_RE = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "request_id", "taskName", "color_message"}  # uvicorn's ANSI copy
)


def redact(text: str) -> str:
    """`text` with credentials replaced by [REDACTED]."""
    if not text:
        return text
    text = _HEADER_RE.sub(lambda m: f"{m['key']}{m['quote']}{REDACTED}{m['quote']}", text)
    text = _BEARER_RE.sub(f"Bearer {REDACTED}", text)
    text = _JWT_RE.sub(REDACTED, text)
    return _PARAM_RE.sub(lambda m: f"{m['key']}{REDACTED}" if m["value"] != REDACTED else m[0], text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _is_secret_key(key: Any) -> bool:
    k = str(key).lower().replace("-", "_")
    return k in {"authorization", "x_access_token", "password", "secret", "cookie", "refresh", "access"} or (
        k.endswith("token") and k not in {"token_id", "token_prefix"}
    )


def _jsonable(value: Any) -> Any:
    """A JSON-ready, redacted copy: objects (a request, a path) become their redacted str()."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): REDACTED if _is_secret_key(k) else _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return redact(str(value))


def _record_request_id(record: logging.LogRecord) -> str:
    """The current request's id; for Django's own request log lines (written after the middleware
    returned), the id kept on the request they carry; else "-"."""
    return current_request_id() or getattr(getattr(record, "request", None), "request_id", None) or "-"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (the current request's id, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None) or record.request_id == "-":
            record.request_id = _record_request_id(record)
        return True


class RedactFilter(logging.Filter):
    """Redacts credentials from the message (arguments merged in first) and from `extra=` values."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging to report
            return True
        record.msg, record.args = redact(message), None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = REDACTED if _is_secret_key(key) else _redact_value(value)
        return True


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = _record_request_id(record)
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the
    `extra=` fields, and the exception (type and traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or _record_request_id(record),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = REDACTED if _is_secret_key(key) else _jsonable(value)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)
