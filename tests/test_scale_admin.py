"""The admin changelists at scale (issue 16, "Admin sort and filter pass" in docs/performance.md):
every sortable column and every filter choice of the tokens changelist reads an index, the
expiry sort keeps the never-activated tokens (no expiry) last in both directions, and the gauges
job counts from indexes only."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.gauges import USERS_EXACT_BELOW, gauge_figures
from tests.factories import UserFactory
from tokens.admin import TOKEN_SORTABLE_BY, AccessTokenAdmin
from tokens.models import AccessToken, TokenState, token_digest

URL = "/admin/tokens/accesstoken/"
postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="query plans are PostgreSQL's")


def _token(user, *, activated_ago=None, hours=24, revoked=False, auto_renew=False, expired=False):
    now = timezone.now()
    digest = token_digest(secrets.token_urlsafe(16))
    activated = now - activated_ago if activated_ago is not None else None
    return AccessToken.objects.create(
        user=user,
        digest=digest,
        prefix=digest[:8],
        duration_hours=hours,
        cost=Decimal("18.00"),
        activated_at=activated,
        expires_at=activated + timedelta(hours=hours) if activated else None,
        revoked_at=now if revoked else None,
        expired_at=now if expired else None,
        auto_renew=auto_renew,
    )


def _column(name: str) -> int:
    # The changelist numbers its columns after the action checkbox (index 0).
    return AccessTokenAdmin.list_display.index(name) + 1


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
def test_token_expiry_sort_keeps_tokens_without_expiry_last_both_ways(staff_client):
    user = UserFactory()
    waiting = [_token(user), _token(user)]  # not activated: no expiry
    soon = _token(user, activated_ago=timedelta(hours=23))
    later = _token(user, activated_ago=timedelta(hours=1))
    past = _token(user, activated_ago=timedelta(hours=30))
    column = _column("expires_at_display")

    ascending = list(staff_client.get(f"{URL}?o={column}").context["cl"].result_list)
    descending = list(staff_client.get(f"{URL}?o=-{column}").context["cl"].result_list)

    assert ascending[:3] == [past, soon, later]
    assert descending[:3] == [later, soon, past]
    for rows in (ascending, descending):
        assert {t.pk for t in rows[3:]} == {t.pk for t in waiting}


@pytest.mark.django_db
def test_token_changelist_sorts_only_by_indexed_columns(staff_client):
    """A column outside `sortable_by` (no index: a sort of the whole table, twice) has no sort
    link, and asking for it anyway leaves the default order."""
    user = UserFactory()
    first = _token(user, activated_ago=timedelta(hours=1))
    second = _token(user, activated_ago=timedelta(hours=5))
    page = staff_client.get(URL).content.decode()
    for name in AccessTokenAdmin.list_display:
        sortable = name in TOKEN_SORTABLE_BY
        assert (f'class="sortable column-{name}' in page) is sortable, name
    response = staff_client.get(f"{URL}?o={_column('activated_at')}")
    assert list(response.context["cl"].result_list) == [second, first]  # newest first


def _page_query(client, url: str, table: str = "tokens_accesstoken") -> str:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    pages = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith(f'SELECT "{table}"."id"') and "LIMIT" in q["sql"]
    ]
    assert pages, url
    return pages[-1]


def _plan(sql: str, *, no_sort: bool = False) -> str:
    """With sequential scans priced out, what is left is the plan the indexes allow (a tiny test
    table would otherwise be read whole: the right choice for a few hundred rows). `no_sort`
    prices out sorts too, incremental ones included: left is an index read in the page's order."""
    switches = ["enable_seqscan", "enable_bitmapscan"]
    switches += ["enable_sort", "enable_incremental_sort"] if no_sort else []
    with transaction.atomic(), connection.cursor() as cursor:
        for name in switches:
            cursor.execute(f"SET LOCAL {name} = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        for name in switches:
            cursor.execute(f"RESET {name}")
    return plan


def _seed_mix(per_kind: int = 120):
    """More of each kind than a page holds (100), so that every page query has its LIMIT."""
    users = [UserFactory() for _ in range(3)]
    now = timezone.now()
    rows = []
    for i in range(per_kind):
        for activated_ago, hours, revoked, expired, auto_renew in (
            (None, 24, False, False, False),
            (timedelta(hours=1), 24, False, False, i % 2 == 0),
            (timedelta(hours=30), 24, False, i % 2 == 0, False),
            (timedelta(hours=2), 168, True, False, False),
            # As at scale, a filter's rows are a small part of the table.
            *[(timedelta(hours=1), 12, False, False, False)] * 8,
        ):
            digest = token_digest(secrets.token_urlsafe(16))
            activated = now - activated_ago if activated_ago is not None else None
            rows.append(
                AccessToken(
                    user=users[i % 3],
                    digest=digest,
                    prefix=digest[:8],
                    duration_hours=hours,
                    cost=Decimal("18.00"),
                    activated_at=activated,
                    expires_at=activated + timedelta(hours=hours) if activated else None,
                    revoked_at=now if revoked else None,
                    expired_at=now if expired else None,
                    auto_renew=auto_renew,
                )
            )
    AccessToken.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_accesstoken")


@postgres_only
@pytest.mark.django_db
def test_token_changelist_sorts_read_an_index_in_order(staff_client):
    """Every sortable column, both directions: the page is read in index order (at most an
    incremental sort of the id tie-break), never a sort of the whole table."""
    _seed_mix()
    for name in TOKEN_SORTABLE_BY:
        for prefix in ("", "-"):
            sql = _page_query(staff_client, f"{URL}?o={prefix}{_column(name)}")
            plan = _plan(sql)
            full_sorts = re.findall(r"(?:^|->)\s*Sort\s+\(", plan, re.MULTILINE)
            assert not full_sorts, (name, prefix, plan)
            assert "Seq Scan on tokens_accesstoken" not in plan, (name, prefix, plan)
    sql = _page_query(staff_client, f"{URL}?o=-{_column('expires_at_display')}")
    assert "NULLS LAST" in sql
    assert "token_expiry_desc_idx" in _plan(sql)


@postgres_only
@pytest.mark.django_db
def test_token_changelist_filters_read_their_partial_indexes(staff_client):
    """Each filter choice's page (and its capped count) is read from an index in the page's
    order, newest first, over that choice's rows only (LARGE: 0.1-1 s -> 3-23 ms)."""
    _seed_mix()
    expected = {
        f"?state={TokenState.NOT_ACTIVATED}": "token_not_activated_idx",
        f"?state={TokenState.EXPIRED}": "token_activated_live_idx",
        f"?state={TokenState.REVOKED}": "token_revoked_idx",
        "?auto_renew__exact=1": "token_auto_renew_idx",
        "?duration_hours__exact=168": "token_duration_idx",
    }
    for query, index in expected.items():
        plan = _plan(_page_query(staff_client, URL + query), no_sort=True)
        assert f"Index Scan Backward using {index}" in plan, (query, plan.replace("\n", " | "))
        assert "Sort" not in plan, (query, plan)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_gauges_count_active_tokens_from_the_partial_index_alone():
    """The gauges job (every 30 s) counts the active tokens with an index-only scan of the
    running tokens' partial index (the heap not read: `activated_at` spelled out in the count
    made it an index scan with a heap fetch per token); the figure is `active()`'s."""
    _seed_mix()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tokens_accesstoken")  # the visibility map, as autovacuum keeps it
    with CaptureQueriesContext(connection) as ctx:
        figures = gauge_figures()
    assert figures["active_tokens"] == AccessToken.objects.active().count() > 0
    [count] = [q["sql"] for q in ctx.captured_queries if 'FROM "tokens_accesstoken"' in q["sql"]]
    plan = _plan(count)
    assert "Index Only Scan using token_running_expiry_idx" in plan, plan


@postgres_only
@pytest.mark.django_db
def test_gauges_users_total_is_the_estimate_on_a_large_table_exact_below():
    UserFactory.create_batch(3)
    UserFactory(is_active=False)
    assert gauge_figures()["users_total"] == 4  # never analyzed, then small: exact
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_user")
        assert gauge_figures()["users_total"] == 4
        # What autovacuum would record for a large table (rolled back with the test).
        cursor.execute(
            "UPDATE pg_class SET reltuples = %s WHERE oid = 'accounts_user'::regclass",
            [USERS_EXACT_BELOW + 7],
        )
    with CaptureQueriesContext(connection) as ctx:
        figures = gauge_figures()
    assert figures["users_total"] == USERS_EXACT_BELOW + 7
    assert figures["users_active"] == USERS_EXACT_BELOW + 6
    assert not any(
        'COUNT(*) AS "__count" FROM "accounts_user"' in q["sql"] and "is_active" not in q["sql"]
        for q in ctx.captured_queries
    )


BIG_CHANGELISTS = (
    "tokens.accesstoken",
    "accounts.user",
    "currency.transaction",
    "proxy.proxysession",
    "audit.auditlog",
    "payments.payment",
    "notifications.notification",
    "webhooks.webhookdelivery",
)


def _order_column(model, model_admin, name: str) -> str:
    if hasattr(model_admin, name):
        order = getattr(getattr(model_admin, name), "admin_order_field", None)
        if hasattr(order, "expression"):  # an OrderBy over F(...)
            order = order.expression.name
        name = order.lstrip("-")
    return model._meta.get_field(name.split("__")[0]).column


@pytest.mark.django_db
def test_big_changelists_sort_only_by_columns_that_lead_an_index(rf):
    """A column is sortable on a large table's changelist only if an index starts with it (else
    the capped count and the page each sort the whole table: 0.2-9 s at LARGE)."""
    from django.contrib import admin

    checked = 0
    for model, model_admin in admin.site._registry.items():
        if model._meta.label_lower not in BIG_CHANGELISTS:
            continue
        request = rf.get("/")
        request.user = UserFactory.build(is_staff=True, is_superuser=True)
        display = model_admin.get_list_display(request)
        sortable = [n for n in model_admin.get_sortable_by(request) if n in display]
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        leading = {
            c["columns"][0]
            for c in constraints.values()
            if c["columns"] and (c["index"] or c["primary_key"] or c["unique"])
        }
        for name in sortable:
            column = _order_column(model, model_admin, name)
            assert column in leading, (model._meta.label_lower, name, column)
            checked += 1
        assert set(sortable) != set(display) or not display, model._meta.label_lower
    assert checked >= len(BIG_CHANGELISTS)


@postgres_only
@pytest.mark.django_db
def test_user_changelist_rare_filter_choices_read_their_indexes(staff_client):
    """Staff, superusers, a paid tier: few users (or none) among many; newest first from an
    index over those only, not a walk of every user by `date_joined` (LARGE: 46-54 ms -> 0.03 ms)."""
    UserFactory.create_batch(60, tier="premium")
    UserFactory.create_batch(60, is_staff=True, is_superuser=True)
    UserFactory.create_batch(600)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_user")
    expected = {
        "?is_staff__exact=1": "user_staff_idx",
        "?is_superuser__exact=1": "user_superuser_idx",
        "?tier__exact=premium": "user_tier_joined_idx",
    }
    for query, index in expected.items():
        plan = _plan(
            _page_query(staff_client, "/admin/accounts/user/" + query, "accounts_user"), no_sort=True
        )
        assert f"Index Scan Backward using {index}" in plan, (query, plan)
