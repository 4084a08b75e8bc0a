"""A local stand-in of YooKassa's HTTP API v3 (the parts the adapter uses), for tests.

A stdlib ThreadingHTTPServer on 127.0.0.1: `POST /v3/payments` (HTTP Basic auth,
`Idempotence-Key` required; the same key answers with the same payment, as YooKassa does),
`GET /v3/payments/{id}`. Tests change a payment's state with `set_status()` (what the customer
paying on YooKassa's page would do) and read what was sent in `requests`.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHOP_ID = "123456"
SECRET_KEY = "test_secret_key_standin"


class YooKassaStandIn:
    def __init__(self):
        self.payments: dict[str, dict] = {}
        self.by_key: dict[str, str] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v3"

    def start(self) -> YooKassaStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_status(self, payment_id: str, status: str, *, amount: str | None = None) -> None:
        with self.lock:
            payment = self.payments[payment_id]
            payment["status"] = status
            payment["paid"] = status == "succeeded"
            if amount is not None:
                payment["amount"]["value"] = amount

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorized(self) -> bool:
                expected = "Basic " + base64.b64encode(f"{SHOP_ID}:{SECRET_KEY}".encode()).decode()
                return self.headers.get("Authorization") == expected

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("Idempotence-Key")
                standin.requests.append({"method": "POST", "path": self.path, "key": key, "body": body})
                if not self._authorized():
                    return self._send(401, {"type": "error", "code": "invalid_credentials"})
                if self.path != "/v3/payments":
                    return self._send(404, {"type": "error", "code": "not_found"})
                if not key:
                    return self._send(400, {"type": "error", "code": "invalid_request"})
                with standin.lock:
                    if key in standin.by_key:
                        return self._send(200, standin.payments[standin.by_key[key]])
                    payment_id = str(uuid.uuid4())
                    payment = {
                        "id": payment_id,
                        "status": "pending",
                        "paid": False,
                        "amount": dict(body["amount"]),
                        "confirmation": {
                            "type": "redirect",
                            "confirmation_url": f"https://yoomoney.example/checkout?orderId={payment_id}",
                        },
                        "metadata": body.get("metadata", {}),
                        "description": body.get("description", ""),
                    }
                    standin.payments[payment_id] = payment
                    standin.by_key[key] = payment_id
                return self._send(200, payment)

            def do_GET(self):
                standin.requests.append({"method": "GET", "path": self.path})
                if not self._authorized():
                    return self._send(401, {"type": "error", "code": "invalid_credentials"})
                prefix = "/v3/payments/"
                payment = (
                    standin.payments.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
                )
                if payment is None:
                    return self._send(404, {"type": "error", "code": "not_found"})
                return self._send(200, payment)

        return Handler
