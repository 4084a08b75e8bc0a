"""The OpenAPI schema is the contract (SPEC §13, issue 14).

- `/api/schema/` validates as OpenAPI 3.
- schemathesis generates valid and invalid requests for every operation (except the payment
  provider's callback, which needs a provider signature, and the proxy, which is not in the schema)
  and sends them to a live server as a customer on the top tier (enterprise: no rate limit), with
  a token, a webhook endpoint and a pending payment of their own so that paths with ids are also
  met. Every answer must be documented (status, content type, body schema) and every request the
  schema calls invalid must be refused.

Bounded: a fixed number of examples per operation, derandomized (the same cases every run).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest
import requests
import schemathesis
from django.db import connection
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from payments.deposits import deposit_mock
from tests.factories import UserFactory
from tokens.services import token_purchase

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_PER_OPERATION = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "10"))


def test_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on any violation of the OpenAPI 3 specification


def test_every_operation_documents_its_errors(client):
    """Each operation lists its error answers with the one error shape, 429/503 with Retry-After."""
    document = json.loads(client.get("/api/schema/?format=json").content)
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "patch", "put", "delete")
    ]
    assert len(operations) >= 39
    for path, method, operation in operations:
        responses = operation["responses"]
        assert "503" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
                assert "`code` is one of" in response["description"], (method, path, status)
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], (method, path, status)
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "code"}
    assert "errors" in error["properties"]


def _served_schema() -> dict:
    """The document /api/schema/ serves, generated in-process at collection time (the test then
    sends every case to the live server). schemathesis' `from_fixture` loader, which would fetch
    it from the live server, does not run under pytest 9."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


contract = schemathesis.openapi.from_dict(_served_schema())
contract.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_OPERATION,
    deterministic=True,
    no_shrink=True,
)


@pytest.fixture
def contract_db(transactional_db):
    if connection.vendor != "postgresql" and not os.environ.get("CONTRACT_ON_SQLITE"):
        pytest.skip(
            "the live-server contract test runs on PostgreSQL + Redis (CI's first run); on the embedded "
            "default (SQLite) it is slow: set CONTRACT_ON_SQLITE=1 to run it there"
        )


@pytest.fixture
def enterprise_customer(contract_db):
    """A top-tier customer with money, a token, a webhook endpoint and a pending payment."""
    from payments.services import payment_create
    from webhooks.models import WebhookEndpoint

    user = UserFactory(tier="enterprise")
    deposit_mock(user=user, amount=Decimal("90000"))
    token_purchase(user=user, duration_hours=24, scope="full", auto_renew=False)
    WebhookEndpoint.objects.create(user=user, url="https://hooks.example.com/x", events=["token.purchased"])
    payment_create(user=user, amount=Decimal("10"), currency="ZNC")
    return user


@contract.exclude(path="/api/v1/webhooks/payment").parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_keeps_its_contract(case, enterprise_customer, live_server):
    access = str(RefreshToken.for_user(enterprise_customer).access_token)
    with requests.Session() as session:
        case.call_and_validate(
            base_url=live_server.url,
            session=session,
            headers={"Authorization": f"Bearer {access}"},
            checks=CHECKS,
        )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/analytics/usage?period=", "invalid_period"),
        ("/api/v1/currency/payments?limit=", "invalid_pagination"),
        ("/api/v1/currency/transactions?skip=", "invalid_pagination"),
        ("/api/v1/currency/transactions?limit=1_0", "invalid_pagination"),
        ("/api/v1/currency/transactions?transaction_type=", "invalid_transaction_type"),
        ("/api/v1/currency/transactions?transaction_type=deposit", "invalid_transaction_type"),
        ("/api/v1/tokens/my-tokens?active_only=", "invalid_boolean"),
        ("/api/v1/tokens/my-tokens?active_only=yes", "invalid_boolean"),
        ("/api/v1/bundles/?include_inactive=", "invalid_boolean"),
    ],
)
def test_empty_or_odd_query_values_are_400_not_defaults(auth_client, path, code):
    response = auth_client.get(path)
    assert response.status_code == 400
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/tokens/purchase", {"duration_hours": "24"}, "duration_hours"),
        ("/api/v1/tokens/purchase", {"duration_hours": 24, "auto_renew": 1}, "auto_renew"),
        ("/api/v1/currency/mock-purchase", {"amount": "1e2"}, "amount"),
        ("/api/v1/currency/mock-purchase", {"amount": " 100"}, "amount"),
        ("/api/v1/currency/mock-purchase", {"amount": True}, "amount"),
        ("/api/v1/webhooks/", {"url": "https://hooks.example.com/x", "events": []}, "events"),
    ],
)
def test_json_bodies_the_schema_calls_invalid_are_400_and_change_nothing(
    auth_client, user, path, body, field
):
    from currency.models import Transaction

    response = auth_client.post(path, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    user.refresh_from_db()
    assert user.balance == 0 and not Transaction.objects.filter(user=user).exists()


def test_amounts_as_decimal_strings_or_numbers(auth_client, user):
    assert (
        auth_client.post("/api/v1/currency/mock-purchase", {"amount": "150.50"}, format="json").status_code
        == 200
    )
    assert (
        auth_client.post("/api/v1/currency/mock-purchase", {"amount": 20}, format="json").status_code == 200
    )
    user.refresh_from_db()
    assert user.balance == Decimal("170.50")


def test_empty_patch_is_refused_and_documented(client):
    document = json.loads(client.get("/api/schema/?format=json").content)
    schemas = document["components"]["schemas"]
    for name in ("PatchedMeUpdateRequest", "PatchedTokenBundleWriteRequest", "PatchedAdminUserUpdateRequest"):
        assert schemas[name]["minProperties"] == 1, name


def test_empty_bundle_patch_is_400_and_changes_nothing(db):
    from rest_framework.test import APIClient

    from bundles.models import TokenBundle

    staff = UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_authenticate(staff)
    bundle = TokenBundle.objects.filter(is_active=True).first()
    before = (bundle.name, bundle.discount_percent, bundle.is_active)
    response = client.patch(f"/api/v1/bundles/{bundle.pk}", {}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "no_changes"
    bundle.refresh_from_db()
    assert (bundle.name, bundle.discount_percent, bundle.is_active) == before


@pytest.mark.parametrize("key", ["", " padded ", "with space", "é" * 3, "k" * 256])
def test_idempotency_key_outside_its_alphabet_is_400(auth_client, user, key):
    response = auth_client.post(
        "/api/v1/currency/mock-purchase", {"amount": "10"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"
    user.refresh_from_db()
    assert user.balance == 0


def test_api_root_links_to_the_main_resources(client, db):
    response = client.get("/api/v1/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    links = response.json()["links"]
    for name in ("login", "me", "balance", "transactions", "token_purchase", "bundles", "webhooks", "schema"):
        assert links[name].startswith("http://testserver/")
    assert client.get(links["bundles"]).status_code == 200
    browsable = client.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert browsable.status_code == 200 and b"Zenzefi Platform API" in browsable.content
    document = json.loads(client.get("/api/schema/?format=json").content)
    assert "200" in document["paths"]["/api/v1/"]["get"]["responses"]


def test_every_503_carries_retry_after():
    """A 503 from a service (here: top-ups with no payment provider) says when to retry."""
    from payments.providers import TopupsUnavailable
    from zenzefi.errors import api_exception_handler

    response = api_exception_handler(TopupsUnavailable(), {})
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert response.data["code"] == "topups_unavailable"
