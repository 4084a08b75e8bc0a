"""Load test of the realistic customer flows (issue 8): Locust, headless, against a local deployment.

Each simulated customer registers, logs in, tops up with the mock provider, buys one access token
per device (2-3 devices, "one token = one device"), and then mostly sends proxy traffic from its
devices, with now and then a look at its balance and tokens, a status check, a token bought and
revoked again (pro-rata refund), and a probe that another device is refused (409).

Run it with bench/loadtest.py (starts a fake upstream, the platform under gunicorn with uvicorn
workers, and Locust; docs/performance.md "Load test"), or by hand against any deployment whose
MOCK_PAYMENTS_ENABLED is on and whose auth rate limit (5/h per IP) is off or raised, since every
simulated customer registers from the same address:

    locust -f bench/locustfile.py --headless -u 20 -r 5 -t 60s --host http://127.0.0.1:8600

LOADTEST_PROXY_PATH picks the upstream path the devices fetch (default /small).
"""

from __future__ import annotations

import os
import random
import uuid

from locust import HttpUser, between, events, task

PROXY_PATH = os.environ.get("LOADTEST_PROXY_PATH", "/small")
PASSWORD = "Load-Test-2026-strong"
TOPUP = "500.00"


class Customer(HttpUser):
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        name = f"lt_{uuid.uuid4().hex[:12]}"
        self.devices: list[tuple[str, str, int]] = []  # (device id, token, token id)
        self.auth: dict[str, str] = {}
        with self.client.post(
            "/api/v1/auth/register",
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
            name="register",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"register: {response.status_code} {response.text[:200]}")
                self.stop()
                return
        response = self.client.post(
            "/api/v1/auth/login", json={"username": name, "password": PASSWORD}, name="login"
        )
        self.auth = {"Authorization": f"Bearer {response.json()['access']}"}
        self.client.post(
            "/api/v1/currency/mock-purchase",
            json={"amount": TOPUP},
            headers={**self.auth, "Idempotency-Key": f"topup-{name}"},
            name="top up (mock)",
        )
        for n in range(random.randint(2, 3)):
            token, token_id = self._buy(duration_hours=24)
            if token:
                self.devices.append((f"{name}-pc{n}", token, token_id))
        for device in self.devices:  # first use: activates the token, opens the device's session
            self.client.get(
                f"/api/v1/proxy{PROXY_PATH}", headers=self._device_headers(device), name="proxy GET (first)"
            )

    def _buy(self, *, duration_hours: int) -> tuple[str | None, int | None]:
        response = self.client.post(
            "/api/v1/tokens/purchase",
            json={"duration_hours": duration_hours, "scope": "full"},
            headers=self.auth,
            name="buy token",
        )
        if response.status_code != 201:
            return None, None
        body = response.json()
        return body["token"], body["id"]

    def _device_headers(self, device: tuple[str, str, int]) -> dict[str, str]:
        device_id, token, _ = device
        return {"X-Access-Token": token, "X-Device-ID": device_id}

    @task(20)
    def proxy_traffic(self) -> None:
        if self.devices:
            device = random.choice(self.devices)
            self.client.get(
                f"/api/v1/proxy{PROXY_PATH}", headers=self._device_headers(device), name="proxy GET"
            )

    @task(2)
    def proxy_status(self) -> None:
        if self.devices:
            self.client.get(
                "/api/v1/proxy/status", headers=self._device_headers(self.devices[0]), name="proxy status"
            )

    @task(2)
    def dashboard_reads(self) -> None:
        self.client.get("/api/v1/currency/balance", headers=self.auth, name="balance")
        self.client.get("/api/v1/tokens/my-tokens?active_only=true", headers=self.auth, name="my tokens")

    @task(1)
    def buy_and_revoke(self) -> None:
        _, token_id = self._buy(duration_hours=1)
        if token_id:
            self.client.delete(f"/api/v1/tokens/{token_id}", headers=self.auth, name="revoke token")

    @task(1)
    def other_device_is_refused(self) -> None:
        if not self.devices:
            return
        _, token, _ = self.devices[0]
        with self.client.get(
            f"/api/v1/proxy{PROXY_PATH}",
            headers={"X-Access-Token": token, "X-Device-ID": f"intruder-{uuid.uuid4().hex[:6]}"},
            name="proxy GET, other device (409 expected)",
            catch_response=True,
        ) as response:
            if response.status_code == 409:
                response.success()
            else:
                response.failure(f"expected 409, got {response.status_code}")


@events.quitting.add_listener
def _fail_on_errors(environment, **_kwargs) -> None:
    """A headless run exits non-zero when any request failed."""
    if environment.stats.total.fail_ratio > 0:
        environment.process_exit_code = 1
