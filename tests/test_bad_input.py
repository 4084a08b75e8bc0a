"""Hostile input (issue 11 item 7): deeply nested JSON is a 400 on every JSON endpoint."""

from __future__ import annotations

import json
import re

import pytest
from rest_framework.test import APIClient

from currency.models import Transaction
from payments.models import Payment
from tests.factories import UserFactory
from tests.payments_support import CALLBACK, post_callback

pytestmark = pytest.mark.django_db

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def json_write_operations() -> list[tuple[str, str]]:
    """Every POST/PUT/PATCH operation of the OpenAPI schema that takes a JSON body."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/proxy"):
            continue  # the proxy streams bodies to the upstream unparsed
        for method in ("post", "put", "patch"):
            operation = operations.get(method)
            if operation and "application/json" in (operation.get("requestBody") or {}).get("content", {}):
                found.append((method, path))
    return found


def test_the_schema_lists_the_json_endpoints():
    paths = {path for _, path in json_write_operations()}
    assert {"/api/v1/auth/login", "/api/v1/currency/purchase", "/api/v1/admin/users/{user_id}"} <= paths


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_deep_json_is_400_on_every_json_endpoint(body):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_authenticate(staff)
    parsed = 0
    for method, path in json_write_operations():
        url = re.sub(r"\{[^}]+\}", str(staff.pk), path)
        response = client.generic(method.upper(), url, body, content_type="application/json")
        assert response.status_code < 500, (method, path, response.status_code)
        if response.status_code == 400:
            parsed += 1
            assert set(response.json()) >= {"detail", "code"}, (method, path)
    assert parsed >= 10
    assert not Transaction.objects.exists() and not Payment.objects.exists()


def test_deep_json_payment_callback_is_400(api_client):
    response = post_callback(api_client, DEEP)  # correctly signed, but no JSON a parser survives
    assert response.status_code == 400 and response.json()["code"] == "invalid_callback"
    response = api_client.generic("POST", CALLBACK + "?provider=mock", DEEP, content_type="application/json")
    assert response.status_code == 400


def test_deep_json_login_is_400_with_the_usual_shape(api_client):
    response = api_client.generic("POST", "/api/v1/auth/login", DEEP, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


# --- amounts: one rule on every amount field --------------------------------------------------

BAD_AMOUNTS = [
    "1_000",
    "1_0",
    "１０",  # full-width digits
    "١٠",  # Arabic-Indic digits
    "۱۰",  # extended Arabic-Indic digits
    "१०",  # Devanagari digits
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e2",
    "1E2",
    "1.5e1",
    "+10",
    "0x10",
    "10,00",
    "",
    True,
    [10],
]
BAD_IDS = [repr(v) for v in BAD_AMOUNTS]


def money_state(user) -> tuple:
    user.refresh_from_db()
    return (
        user.balance,
        user.auto_renew_min_balance,
        Transaction.objects.count(),
        Payment.objects.count(),
    )


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def amount_requests(user, value):
    """(client, method, path, body) for every REST amount field."""
    staff = UserFactory(is_staff=True, is_superuser=True)
    return [
        (api_as(user), "post", "/api/v1/currency/mock-purchase", {"amount": value}),
        (api_as(user), "post", "/api/v1/currency/purchase", {"amount": value}),
        (
            api_as(staff),
            "patch",
            f"/api/v1/admin/users/{user.pk}",
            {"balance_adjustment": {"amount": value, "reason": "x"}},
        ),
        (api_as(user), "patch", "/api/v1/users/me/auto-renewal", {"auto_renew_min_balance": value}),
    ]


@pytest.mark.parametrize("value", BAD_AMOUNTS, ids=BAD_IDS)
def test_bad_amounts_are_400_on_every_rest_amount_field(user, value):
    for client, method, path, body in amount_requests(user, value):
        before = money_state(user)
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 400, (path, value, response.content)
        assert response.json()["code"] == "invalid"
        assert money_state(user) == before


@pytest.mark.parametrize("literal", [b"1e2", b"1E+2", b"10.0e0"])
def test_exponent_json_numbers_are_400(user, literal):
    for client, method, path, body in amount_requests(user, 0):
        raw = json.dumps(body).replace(": 0", ": " + literal.decode())
        before = money_state(user)
        response = client.generic(method.upper(), path, raw, content_type="application/json")
        assert response.status_code == 400, (path, literal, response.content)
        assert money_state(user) == before


@pytest.mark.parametrize("value", ["10", 10, 10.5, "10.50", " 10 ", "-0"])
def test_plain_amounts_still_work(user, value):
    client = api_as(user)
    response = client.post("/api/v1/currency/mock-purchase", {"amount": value}, format="json")
    if value == "-0":
        assert response.status_code == 400  # below the minimum, not malformed
        assert "digits 0-9" not in response.json()["detail"]
        return
    assert response.status_code in (200, 201), response.content
    assert Transaction.objects.filter(user=user).count() == 1


def topup_nonce(client) -> dict:
    """The top-up form's one-time nonce (docs/pages.md, "Money pages and reloads")."""
    page = client.get("/account/topup/").content.decode()
    return {"nonce": re.search(r'name="nonce" value="([^"]+)"', page).group(1)}


@pytest.mark.parametrize("value", ["1_000", "１０", "١٠", "NaN", "Infinity", "1e2", "+10"])
def test_bad_amounts_are_refused_on_the_pages(client, user, value):
    client.force_login(user)
    before = money_state(user)
    topup = client.post("/account/topup/", {"amount": value, "currency": "ZNC", **topup_nonce(client)})
    assert topup.status_code == 400 and "checkout_id" not in topup.content.decode()
    assert topup.context["form"].errors["amount"]
    renew = client.post("/account/auto-renewal/", {"auto_renew_min_balance": value})
    assert renew.status_code == 200 and renew.context["form"].errors
    assert money_state(user) == before
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    admin = client.post(f"/admin/accounts/user/{user.pk}/adjust-balance/", {"amount": value, "reason": "x"})
    assert admin.status_code == 200 and admin.context["form"].errors["amount"]
    assert money_state(user) == before


def test_plain_amount_on_the_top_up_page_reaches_the_checkout(client, user):
    client.force_login(user)
    page = client.post("/account/topup/", {"amount": "150", "currency": "ZNC", **topup_nonce(client)})
    assert page.status_code == 200 and not (page.context.get("form") and page.context["form"].errors)


# --- SSRF: IPv6 forms that embed a non-public IPv4 address --------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:7f00:0001:0:0:0:0:1",
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254 (metadata)
        "2001:0:7f00:1:0:0:0:0",  # Teredo, server 127.0.0.1
        "2001:0:808:808:0:0:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
        "2001:0:808:808:0:0:f5ff:fffe",  # Teredo, client 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::7f00:1",  # local-use NAT64
        "64:ff9b:1::808:808",  # local-use NAT64, even of a public address
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a00:1",
    ],
)
def test_ssrf_refuses_ipv6_forms_embedding_private_ipv4(address, auth_client):
    from webhooks.models import WebhookEndpoint
    from webhooks.urlsafety import address_refused

    assert address_refused(address), address
    response = auth_client.post(
        "/api/v1/webhooks/", {"url": f"http://[{address}]/hook", "events": ["token.purchased"]}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "webhook_url_refused"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("address", ["2002:808:808::1", "2606:4700:4700::1111", "8.8.8.8"])
def test_ssrf_public_controls_pass(address):
    from webhooks.urlsafety import address_refused

    assert address_refused(address) is None  # 6to4 of 8.8.8.8, a native IPv6 and an IPv4 address


def test_ssrf_teredo_and_nat64_of_public_addresses_stay_refused_by_the_address_tables():
    """Python's tables already count 2001::/23 (Teredo) as IETF-reserved-private and ::/8 (NAT64
    64:ff9b::/96) as reserved: those are refused even with a public IPv4 inside."""
    from webhooks.urlsafety import address_refused

    assert address_refused("2001:0:808:808:0:0:f7f7:f7f7") and address_refused("64:ff9b::808:808")
