import importlib
import json
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, transaction
from django.test import override_settings
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from audit.models import AuditLog
from bundles import services
from bundles.models import TokenBundle
from bundles.pricing import token_costs
from currency.models import Transaction, TransactionType
from idempotency.models import IdempotencyRecord
from tests.concurrency import run_threads
from tests.factories import UserFactory, fund, staff_with
from tests.test_currency_api import assert_error
from tests.test_ledger import assert_ledger_consistent
from tokens.models import AccessToken, token_digest
from zenzefi.errors import InvalidInput, NotFound

pytestmark = pytest.mark.django_db

LIST = "/api/v1/bundles/"

DEFAULTS = [
    # name, tokens, hours, discount, base, total, savings, per token
    ("Starter Pack", 5, 24, "10.00", "90.00", "81.00", "9.00", "16.20"),
    ("Pro Bundle", 10, 24, "15.00", "180.00", "153.00", "27.00", "15.30"),
    ("Ultimate Package", 20, 168, "20.00", "2000.00", "1600.00", "400.00", "80.00"),
    ("Month Duo", 2, 720, "15.00", "600.00", "510.00", "90.00", "255.00"),
]


def detail(bundle_id: int) -> str:
    return f"/api/v1/bundles/{bundle_id}"


def purchase_url(bundle_id: int) -> str:
    return f"/api/v1/bundles/{bundle_id}/purchase"


def starter() -> TokenBundle:
    return TokenBundle.objects.get(name="Starter Pack")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def staff(db):
    return staff_with(
        "bundles.view_tokenbundle",
        "bundles.add_tokenbundle",
        "bundles.change_tokenbundle",
        "bundles.delete_tokenbundle",
    )


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


def counter(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def snapshot() -> dict:
    """Everything a bundle request may write."""
    return {
        "bundles": list(TokenBundle.objects.order_by("id").values()),
        "tokens": AccessToken.objects.count(),
        "transactions": Transaction.objects.count(),
        "audit": AuditLog.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
    }


# --- Prices and the data migration --------------------------------------------------------------


@pytest.mark.parametrize(("name", "count", "hours", "discount", "base", "total", "savings", "per"), DEFAULTS)
def test_default_bundles_have_the_spec_prices(
    api_client, name, count, hours, discount, base, total, savings, per
):
    bundle = TokenBundle.objects.get(name=name)
    assert (bundle.token_count, bundle.duration_hours, bundle.scope) == (count, hours, "full")
    assert bundle.is_active and bundle.description
    assert bundle.discount_percent == Decimal(discount)
    assert (bundle.base_price, bundle.total_price, bundle.savings, bundle.price_per_token) == (
        Decimal(base),
        Decimal(total),
        Decimal(savings),
        Decimal(per),
    )
    body = api_client.get(detail(bundle.pk)).json()
    assert body["discount_percent"] == discount
    assert (body["base_price"], body["total_price"], body["savings"], body["price_per_token"]) == (
        base,
        total,
        savings,
        per,
    )


def test_data_migration_is_idempotent_and_reversible():
    migration = importlib.import_module("bundles.migrations.0002_default_bundles")
    TokenBundle.objects.filter(name="Pro Bundle").update(discount_percent=Decimal("1"))
    migration.create_defaults(apps, None)
    assert TokenBundle.objects.count() == 4
    assert TokenBundle.objects.get(name="Pro Bundle").discount_percent == Decimal("1.00")  # left alone
    migration.remove_defaults(apps, None)
    assert TokenBundle.objects.count() == 0
    migration.create_defaults(apps, None)
    assert sorted(TokenBundle.objects.values_list("name", flat=True)) == sorted(d[0] for d in DEFAULTS)


def test_prices_are_derived_from_settings_never_stored():
    columns = {f.column for f in TokenBundle._meta.get_fields() if hasattr(f, "column")}
    assert not columns & {"base_price", "total_price", "savings", "price_per_token"}
    bundle = starter()
    with override_settings(TOKEN_PRICES={**settings.TOKEN_PRICES, 24: Decimal("20")}):
        assert (bundle.base_price, bundle.total_price) == (Decimal("100.00"), Decimal("90.00"))


def test_total_rounds_half_up_and_token_costs_sum_to_it(staff):
    # 3 × 1 h = 3.00; × (1 − 33.33 %) = 2.0001 → 2.00; per token 0.666… → 0.67 (half-up).
    bundle = services.bundle_create(
        actor=staff, name="Odd", token_count=3, duration_hours=1, discount_percent=Decimal("33.33")
    )
    assert (bundle.total_price, bundle.savings, bundle.price_per_token) == (
        Decimal("2.00"),
        Decimal("1.00"),
        Decimal("0.67"),
    )
    # 1 × 12 h at 0.05 % = 9.995 → 10.00 (half-up).
    assert services.bundle_create(
        actor=staff, name="Half", token_count=1, duration_hours=12, discount_percent=Decimal("0.05")
    ).total_price == Decimal("10.00")
    costs = token_costs(total_price=Decimal("2.00"), token_count=3)
    assert costs == [Decimal("0.68"), Decimal("0.66"), Decimal("0.66")]
    assert sum(costs) == Decimal("2.00")
    for total, count in [("81.00", 5), ("0.01", 3), ("100.00", 7), ("1600.00", 20), ("9.99", 100)]:
        costs = token_costs(total_price=Decimal(total), token_count=count)
        assert len(costs) == count and sum(costs) == Decimal(total) and min(costs) >= 0
        assert costs[1:] == [costs[-1]] * (count - 1) and costs[0] >= costs[-1]


@pytest.mark.parametrize(
    "values",
    [
        {"token_count": 0},
        {"token_count": 101},
        {"duration_hours": 0},
        {"discount_percent": Decimal("-0.01")},
        {"discount_percent": Decimal("100.01")},
        {"scope": "everything"},
    ],
)
def test_database_refuses_out_of_range_values(values):
    with pytest.raises(IntegrityError), transaction.atomic():
        TokenBundle.objects.filter(pk=starter().pk).update(**values)


# --- Reading ---------------------------------------------------------------------------------------


def test_public_list_shows_only_active_bundles(api_client, staff):
    hidden = services.bundle_create(
        actor=staff, name="Hidden", token_count=2, duration_hours=1, is_active=False
    )
    response = api_client.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "skip", "limit", "results"}
    names = [b["name"] for b in body["results"]]
    assert names == [d[0] for d in DEFAULTS] and hidden.name not in names
    assert body["count"] == 4
    first = body["results"][0]
    assert set(first) == {
        "id",
        "name",
        "description",
        "token_count",
        "duration_hours",
        "scope",
        "discount_percent",
        "is_active",
        "created_at",
        "base_price",
        "total_price",
        "savings",
        "price_per_token",
    }
    assert api_client.get(LIST, {"limit": 2, "skip": 1}).json()["results"][0]["name"] == "Pro Bundle"


def test_detail_with_and_without_trailing_slash(api_client):
    bundle = starter()
    for url in (detail(bundle.pk), detail(bundle.pk) + "/"):
        response = api_client.get(url)
        assert response.status_code == 200, url
        assert response.json()["name"] == "Starter Pack"


def test_unknown_bundle_is_404(api_client):
    assert_error(api_client.get(detail(999999)), 404, "bundle_not_found")


def test_soft_delete_hides_from_public_but_staff_still_sees_it(api_client, auth_client, staff, staff_client):
    bundle = starter()
    response = staff_client.delete(detail(bundle.pk))
    assert response.status_code == 200
    assert response.json()["is_active"] is False and response.json()["id"] == bundle.pk
    bundle.refresh_from_db()
    assert bundle.is_active is False  # still there: a soft delete
    entry = AuditLog.objects.get(action="bundle.deactivate")
    assert entry.actor == staff and entry.resource_id == str(bundle.pk)

    for client in (api_client, auth_client):
        assert "Starter Pack" not in [b["name"] for b in client.get(LIST).json()["results"]]
        # A customer asking for inactive bundles gets the public list.
        listed = client.get(LIST, {"include_inactive": "true"}).json()["results"]
        assert "Starter Pack" not in [b["name"] for b in listed]
        assert_error(client.get(detail(bundle.pk)), 404, "bundle_not_found")

    assert "Starter Pack" not in [b["name"] for b in staff_client.get(LIST).json()["results"]]
    listed = staff_client.get(LIST, {"include_inactive": "true"}).json()
    assert listed["count"] == 4  # the three other defaults and the deactivated one
    assert "Starter Pack" in [b["name"] for b in listed["results"]]
    assert staff_client.get(detail(bundle.pk)).json()["is_active"] is False

    # Deleting again answers the same and records nothing new.
    assert staff_client.delete(detail(bundle.pk) + "/").status_code == 200
    assert AuditLog.objects.filter(action="bundle.deactivate").count() == 1


@pytest.mark.parametrize("raw", ["maybe", "2"])
def test_bad_include_inactive_is_400(staff_client, raw):
    assert_error(staff_client.get(LIST, {"include_inactive": raw}), 400, "invalid_boolean")


# --- Buying ----------------------------------------------------------------------------------------


def test_purchase_creates_all_tokens_and_one_charge(auth_client, user):
    fund(user, "100")
    bundle = starter()
    response = auth_client.post(purchase_url(bundle.pk))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["total_price"] == "81.00" and body["balance"] == "19.00"
    assert body["bundle"]["id"] == bundle.pk and body["bundle"]["total_price"] == "81.00"
    assert len(body["tokens"]) == 5

    tokens = AccessToken.objects.filter(user=user)
    assert tokens.count() == 5
    purchase_id = body["purchase_id"]
    assert len(purchase_id) == 32
    assert set(tokens.values_list("bundle_purchase", flat=True)) == {purchase_id}
    assert sum(t.cost for t in tokens) == Decimal("81.00")
    assert {t.cost for t in tokens} == {Decimal("16.20")}
    assert all(t.duration_hours == 24 and t.scope == "full" and t.activated_at is None for t in tokens)

    for item in body["tokens"]:
        assert len(item["token"]) == 64 and item["prefix"] == item["token"][:8]
        token = tokens.get(pk=item["id"])
        assert token.digest == token_digest(item["token"])
        assert item["cost"] == "16.20" and item["duration_hours"] == 24 and item["scope"] == "full"
        assert item["bundle_purchase"] == purchase_id and item["status"] == "not_activated"

    charge = Transaction.objects.get(user=user, type=TransactionType.PURCHASE)
    assert charge.amount == Decimal("-81.00")
    assert charge.reference == f"bundle:{bundle.pk}:{purchase_id}"
    assert Transaction.objects.filter(user=user).count() == 2  # the funding and this one
    assert_ledger_consistent(user)
    assert user.balance == Decimal("19.00")

    entry = AuditLog.objects.get(action="bundle.purchase")
    assert entry.actor == user and entry.resource_id == str(bundle.pk)
    assert entry.details["total_price"] == "81.00" and entry.details["bundle_purchase"] == purchase_id
    assert sorted(entry.details["token_ids"]) == sorted(t.pk for t in tokens)


def test_token_costs_with_a_remainder_sum_to_the_total(staff, user):
    bundle = services.bundle_create(
        actor=staff, name="Odd", token_count=3, duration_hours=1, discount_percent=Decimal("33.33")
    )
    fund(user, "5")
    purchase = services.bundle_purchase(user=user, bundle_id=bundle.pk)
    costs = [issued.token.cost for issued in purchase.issued]
    assert costs == [Decimal("0.68"), Decimal("0.66"), Decimal("0.66")]
    assert sum(AccessToken.objects.filter(user=user).values_list("cost", flat=True)) == Decimal("2.00")
    assert Transaction.objects.get(user=user, type=TransactionType.PURCHASE).amount == Decimal("-2.00")
    assert_ledger_consistent(user)


def test_purchase_metrics_count_after_commit(user, django_capture_on_commit_callbacks):
    fund(user, "600")
    sold_before = counter("token_purchases_total", {"duration_hours": "720"})
    revenue_before = counter("znc_revenue_total")
    bundle = TokenBundle.objects.get(name="Month Duo")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.bundle_purchase(user=user, bundle_id=bundle.pk)
    assert counter("token_purchases_total", {"duration_hours": "720"}) == sold_before  # not yet
    for callback in callbacks:
        callback()
    assert counter("token_purchases_total", {"duration_hours": "720"}) == sold_before + 2
    assert counter("znc_revenue_total") == pytest.approx(revenue_before + 510)


def test_failed_purchase_counts_nothing(user, django_capture_on_commit_callbacks):
    """The purchase succeeds, then an outer transaction rolls back: no metric, no token."""
    from django.db import transaction

    class RolledBack(Exception):
        pass

    fund(user, "600")
    revenue_before = counter("znc_revenue_total")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RolledBack),
        transaction.atomic(),
    ):
        services.bundle_purchase(user=user, bundle_id=starter().pk)
        assert AccessToken.objects.filter(user=user).exists()
        raise RolledBack
    assert counter("znc_revenue_total") == revenue_before
    assert not AccessToken.objects.filter(user=user).exists()


def test_plaintext_tokens_are_shown_once_and_never_stored(auth_client, user):
    fund(user, "200")
    bundle = starter()
    first = auth_client.post(purchase_url(bundle.pk), format="json", HTTP_IDEMPOTENCY_KEY="bundle-1")
    assert first.status_code == 201
    plaintexts = [item["token"] for item in first.json()["tokens"]]
    assert len(plaintexts) == 5 and all(plaintexts)

    stored = json.dumps(
        [
            list(IdempotencyRecord.objects.values()),
            list(AuditLog.objects.values()),
            list(Transaction.objects.values()),
            list(AccessToken.objects.values()),
        ],
        default=str,
    )
    assert (
        IdempotencyRecord.objects.count() == 1 and AuditLog.objects.filter(action="bundle.purchase").exists()
    )
    for plaintext in plaintexts:
        assert plaintext not in stored
        assert plaintext[8:40] not in stored  # not even a large piece of it

    # The replay answers the same purchase, without the plaintexts, and charges nothing more.
    replay = auth_client.post(purchase_url(bundle.pk), format="json", HTTP_IDEMPOTENCY_KEY="bundle-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    replayed = replay.json()
    assert [t["id"] for t in replayed["tokens"]] == [t["id"] for t in first.json()["tokens"]]
    assert all(t["token"] is None for t in replayed["tokens"])
    assert replayed["balance"] == "119.00" and replayed["purchase_id"] == first.json()["purchase_id"]
    assert AccessToken.objects.filter(user=user).count() == 5
    assert Transaction.objects.filter(user=user, type=TransactionType.PURCHASE).count() == 1
    assert_ledger_consistent(user)
    assert user.balance == Decimal("119.00")


def test_without_idempotency_key_each_request_buys(auth_client, user):
    fund(user, "200")
    for _ in range(2):
        assert auth_client.post(purchase_url(starter().pk)).status_code == 201
    assert AccessToken.objects.filter(user=user).count() == 10
    assert Transaction.objects.filter(user=user, type=TransactionType.PURCHASE).count() == 2
    assert_ledger_consistent(user)
    assert user.balance == Decimal("38.00")


def test_idempotency_key_is_per_bundle(auth_client, user):
    fund(user, "300")
    pro = TokenBundle.objects.get(name="Pro Bundle")
    assert auth_client.post(purchase_url(starter().pk), HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    second = auth_client.post(purchase_url(pro.pk), HTTP_IDEMPOTENCY_KEY="k")
    assert second.status_code == 201 and second.json()["bundle"]["id"] == pro.pk
    assert "Idempotent-Replayed" not in second
    assert AccessToken.objects.filter(user=user).count() == 15


def test_insufficient_balance_is_402_and_leaves_nothing(auth_client, user):
    fund(user, "80.99")
    before = snapshot()
    body = assert_error(
        auth_client.post(purchase_url(starter().pk), HTTP_IDEMPOTENCY_KEY="poor"), 402, "insufficient_funds"
    )
    assert body["required"] == "81.00" and body["balance"] == "80.99"
    assert snapshot() == before
    assert AccessToken.objects.count() == 0
    assert_ledger_consistent(user)
    assert user.balance == Decimal("80.99")
    # The failed attempt is not remembered: the same key works once there is money.
    fund(user, "0.01")
    assert auth_client.post(purchase_url(starter().pk), HTTP_IDEMPOTENCY_KEY="poor").status_code == 201
    user.refresh_from_db()
    assert user.balance == Decimal("0.00")


def test_inactive_or_unknown_bundle_cannot_be_bought(auth_client, user, staff):
    fund(user, "1000")
    bundle = services.bundle_deactivate(bundle_id=starter().pk, actor=staff)
    before = snapshot()
    assert_error(auth_client.post(purchase_url(bundle.pk)), 404, "bundle_not_found")
    assert_error(auth_client.post(purchase_url(999999)), 404, "bundle_not_found")
    assert snapshot() == before
    with pytest.raises(NotFound):
        services.bundle_purchase(user=staff, bundle_id=bundle.pk)  # not for staff either


def test_anonymous_purchase_is_401(api_client):
    before = snapshot()
    assert_error(api_client.post(purchase_url(starter().pk)), 401, "not_authenticated")
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_bundle_purchases_never_overdraw(requires_postgres):
    user = UserFactory()
    fund(user, "162.00")  # exactly two Starter-Pack-like bundles
    # Its own bundle: a transactional test cannot rely on data-migration rows (another
    # transactional test, e.g. the live-server browser test, may have flushed them).
    bundle_id = TokenBundle.objects.create(
        name="Race Pack", token_count=5, duration_hours=24, scope="full", discount_percent=Decimal("10")
    ).pk
    results = run_threads(6, lambda: client_for(user).post(purchase_url(bundle_id)).status_code)
    assert sorted(results) == [201, 201, 402, 402, 402, 402], results
    assert AccessToken.objects.filter(user=user).count() == 10
    assert_ledger_consistent(user)
    assert user.balance == Decimal("0.00")


# --- Staff management ------------------------------------------------------------------------------

NEW = {
    "name": "Weekend",
    "description": "Two 24-hour tokens.",
    "token_count": 2,
    "duration_hours": 24,
    "scope": "certificates_only",
    "discount_percent": "5",
}


def test_staff_creates_a_bundle(staff_client, staff, api_client):
    response = staff_client.post(LIST, NEW, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Weekend" and body["scope"] == "certificates_only" and body["is_active"] is True
    assert body["discount_percent"] == "5.00"
    assert (body["base_price"], body["total_price"], body["savings"], body["price_per_token"]) == (
        "36.00",
        "34.20",
        "1.80",
        "17.10",
    )
    bundle = TokenBundle.objects.get(pk=body["id"])
    assert bundle.discount_percent == Decimal("5.00") and bundle.token_count == 2
    entry = AuditLog.objects.get(action="bundle.create")
    assert entry.actor == staff and entry.details["total_price"] == "34.20"
    assert "Weekend" in [b["name"] for b in api_client.get(LIST).json()["results"]]


def test_staff_create_uses_defaults(staff_client):
    response = staff_client.post(
        LIST, {"name": "Plain", "token_count": 1, "duration_hours": 1}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["scope"], body["discount_percent"], body["total_price"], body["description"]) == (
        "full",
        "0.00",
        "1.00",
        "",
    )


def test_staff_updates_a_bundle(staff_client, staff):
    bundle = starter()
    response = staff_client.patch(detail(bundle.pk), {"discount_percent": "20"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["discount_percent"], body["total_price"], body["name"]) == ("20.00", "72.00", "Starter Pack")
    bundle.refresh_from_db()
    assert bundle.discount_percent == Decimal("20.00") and bundle.token_count == 5
    entry = AuditLog.objects.get(action="bundle.update")
    assert entry.actor == staff and entry.details["changed"] == ["discount_percent"]
    assert (
        entry.details["before"]["total_price"] == "81.00" and entry.details["after"]["total_price"] == "72.00"
    )

    # Keeping its own name is fine; an unchanged PATCH records nothing.
    assert (
        staff_client.patch(detail(bundle.pk) + "/", {"name": "Starter Pack"}, format="json").status_code
        == 200
    )
    assert AuditLog.objects.filter(action="bundle.update").count() == 1


def test_staff_reactivates_a_bundle(staff_client, staff, api_client):
    bundle = services.bundle_deactivate(bundle_id=starter().pk, actor=staff)
    assert staff_client.patch(detail(bundle.pk), {"is_active": True}, format="json").json()["is_active"]
    assert api_client.get(detail(bundle.pk)).status_code == 200


def test_management_is_staff_only(api_client, auth_client):
    bundle = starter()
    before = snapshot()
    for client, status, code in (
        (auth_client, 403, "permission_denied"),
        (api_client, 401, "not_authenticated"),
    ):
        assert_error(client.post(LIST, NEW, format="json"), status, code)
        assert_error(client.patch(detail(bundle.pk), {"discount_percent": "50"}, format="json"), status, code)
        assert_error(client.patch(detail(bundle.pk) + "/", {"token_count": 1}, format="json"), status, code)
        assert_error(client.delete(detail(bundle.pk)), status, code)
    assert snapshot() == before


def test_staff_actions_on_unknown_bundle_are_404(staff_client):
    assert_error(
        staff_client.patch(detail(999999), {"token_count": 1}, format="json"), 404, "bundle_not_found"
    )
    assert_error(staff_client.delete(detail(999999)), 404, "bundle_not_found")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token_count": 0}, "token_count"),
        ({"token_count": -1}, "token_count"),
        ({"token_count": 101}, "token_count"),
        ({"token_count": "many"}, "token_count"),
        ({"token_count": 2.5}, "token_count"),
        ({"token_count": None}, "token_count"),
        ({"duration_hours": 5}, "duration_hours"),
        ({"duration_hours": 0}, "duration_hours"),
        ({"duration_hours": "day"}, "duration_hours"),
        ({"scope": "everything"}, "scope"),
        ({"discount_percent": "-1"}, "discount_percent"),
        ({"discount_percent": "100.01"}, "discount_percent"),
        ({"discount_percent": "1.234"}, "discount_percent"),
        ({"discount_percent": "abc"}, "discount_percent"),
        ({"discount_percent": "NaN"}, "discount_percent"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Starter Pack"}, "name"),
        ({"total_price": "1.00"}, "total_price"),
        ({"base_price": "1.00"}, "base_price"),
        ({"savings": "0"}, "savings"),
        ({"price_per_token": "0.01"}, "price_per_token"),
    ],
)
def test_bad_bundle_input_is_400_and_changes_nothing(staff_client, change, field):
    target = TokenBundle.objects.get(name="Pro Bundle")
    before = snapshot()
    body = assert_error(staff_client.post(LIST, {**NEW, **change}, format="json"), 400, "invalid")
    assert field in body["errors"]
    body = assert_error(staff_client.patch(detail(target.pk), change, format="json"), 400, "invalid")
    assert field in body["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("missing", ["name", "token_count", "duration_hours"])
def test_create_needs_the_required_fields(staff_client, missing):
    before = snapshot()
    data = {k: v for k, v in NEW.items() if k != missing}
    assert missing in assert_error(staff_client.post(LIST, data, format="json"), 400, "invalid")["errors"]
    assert snapshot() == before


def test_a_discount_that_leaves_nothing_to_pay_is_400(staff_client):
    before = snapshot()
    assert_error(
        staff_client.post(LIST, {**NEW, "discount_percent": "100"}, format="json"), 400, "invalid_discount"
    )
    assert_error(
        staff_client.patch(detail(starter().pk), {"discount_percent": "100"}, format="json"),
        400,
        "invalid_discount",
    )
    assert snapshot() == before
    # 1 × 1 h at 99.5 % = 0.005 → 0.01 (half-up) is still a price; at 99.6 % it rounds to nothing.
    tiny = {**NEW, "name": "Tiny", "token_count": 1, "duration_hours": 1, "discount_percent": "99.5"}
    assert staff_client.post(LIST, tiny, format="json").json()["total_price"] == "0.01"
    assert_error(
        staff_client.post(LIST, {**tiny, "name": "Tinier", "discount_percent": "99.6"}, format="json"),
        400,
        "invalid_discount",
    )


def test_patch_rejects_a_combination_that_breaks_the_rules(staff_client):
    # Each field is valid alone, but the bundle it would make is not.
    bundle = TokenBundle.objects.create(name="Cheap", token_count=1, duration_hours=1)
    before = snapshot()
    assert_error(
        staff_client.patch(detail(bundle.pk), {"discount_percent": "99.9"}, format="json"),
        400,
        "invalid_discount",
    )
    assert snapshot() == before


def test_services_enforce_the_rules_too(staff):
    before = snapshot()
    for values in (
        {"token_count": 0},
        {"token_count": True},
        {"duration_hours": 5},
        {"duration_hours": "24"},
        {"scope": "nope"},
        {"discount_percent": Decimal("101")},
        {"discount_percent": 10.5},
        {"name": " "},
    ):
        args = {"name": "Svc", "token_count": 1, "duration_hours": 24, **values}
        with pytest.raises(InvalidInput):
            services.bundle_create(actor=staff, **args)
    with pytest.raises(InvalidInput):
        services.bundle_update(bundle_id=starter().pk, actor=staff, data={"total_price": Decimal("1")})
    assert snapshot() == before


def test_schema_lists_the_bundle_paths(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ["/api/v1/bundles/", "/api/v1/bundles/{bundle_id}", "/api/v1/bundles/{bundle_id}/purchase"]:
        assert path in paths, path


# --- Admin -----------------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True, language="en")  # reads the admin in English
    client.force_login(admin_user)
    client.admin_user = admin_user
    return client


def test_admin_pages_show_derived_prices(superuser_client):
    bundle = starter()
    for url in [
        "/admin/bundles/tokenbundle/",
        "/admin/bundles/tokenbundle/?is_active__exact=1&scope__exact=full&duration_hours=24",
        f"/admin/bundles/tokenbundle/{bundle.pk}/change/",
        "/admin/bundles/tokenbundle/add/",
    ]:
        assert superuser_client.get(url).status_code == 200, url
    page = superuser_client.get("/admin/bundles/tokenbundle/").content.decode()
    assert "81.00 ZNC" in page and "1,600.00 ZNC" in page  # the locale's grouping
    change = superuser_client.get(f"/admin/bundles/tokenbundle/{bundle.pk}/change/").content.decode()
    assert 'name="total_price' not in change and "90.00 ZNC" in change


def test_admin_add_and_change_go_through_the_services(superuser_client):
    form = {**NEW, "is_active": "on"}
    response = superuser_client.post("/admin/bundles/tokenbundle/add/", form)
    assert response.status_code == 302, response.content
    bundle = TokenBundle.objects.get(name="Weekend")
    assert AuditLog.objects.get(action="bundle.create").actor == superuser_client.admin_user
    response = superuser_client.post(
        f"/admin/bundles/tokenbundle/{bundle.pk}/change/", {**form, "discount_percent": "10"}
    )
    assert response.status_code == 302, response.content
    bundle.refresh_from_db()
    assert bundle.total_price == Decimal("32.40")
    assert AuditLog.objects.get(action="bundle.update").details["changed"] == ["discount_percent"]


def test_admin_refuses_bad_values(superuser_client):
    before = snapshot()
    for bad in ({"duration_hours": "5"}, {"discount_percent": "100"}, {"token_count": "0"}):
        response = superuser_client.post("/admin/bundles/tokenbundle/add/", {**NEW, **bad})
        assert response.status_code == 200  # the form again, with the error
    assert snapshot() == before


def test_admin_deactivate_action_and_no_delete(superuser_client):
    bundle = starter()
    response = superuser_client.post(
        "/admin/bundles/tokenbundle/",
        {"action": "deactivate_selected", "_selected_action": [bundle.pk]},
    )
    assert response.status_code == 302
    bundle.refresh_from_db()
    assert bundle.is_active is False
    assert AuditLog.objects.get(action="bundle.deactivate").actor == superuser_client.admin_user
    assert (
        superuser_client.post(f"/admin/bundles/tokenbundle/{bundle.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert TokenBundle.objects.filter(pk=bundle.pk).exists()


def test_bundle_purchase_fires_one_token_purchased_event_per_token(
    user, django_capture_on_commit_callbacks, settings
):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_endpoint_create(user=user, url="http://127.0.0.1:9/hook", events=["token.purchased"])
    fund(user, "100")
    bundle = TokenBundle.objects.get(name="Starter Pack")
    with django_capture_on_commit_callbacks(execute=True):
        services.bundle_purchase(user=user, bundle_id=bundle.pk)
    assert WebhookDelivery.objects.filter(event="token.purchased").count() == bundle.token_count
