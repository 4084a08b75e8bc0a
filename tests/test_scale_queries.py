"""Query shapes that must not grow with the data (issue 16, SPEC §19 "at scale"): each job's
query count is the same for 10 and 200 due items, a deep page reads the table by primary key
(its OFFSET walks ids only), jobs stay idempotent, and two concurrent expiry runs never take the
same token (PostgreSQL)."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from currency.models import Transaction
from notifications import services as notifications
from notifications.models import Notification, NotificationKind
from proxy import services as proxy_services
from proxy.models import ProxySession
from proxy.state import RedisState, counters_key, get_state
from tests.concurrency import run_concurrently
from tests.factories import UserFactory, fund
from tokens.models import AccessToken, token_digest
from tokens.services import tokens_expire_due
from webhooks import services as webhooks
from webhooks.models import WebhookDelivery, WebhookEndpoint
from zenzefi import pagination
from zenzefi.kv import RedisKV, get_kv


@pytest.fixture
def queued(monkeypatch):
    """What the jobs hand to the broker (after commit), without a broker."""
    sent = {"webhooks": [], "emails": []}
    monkeypatch.setattr(webhooks, "_queue", lambda ids: sent["webhooks"].extend(ids))
    monkeypatch.setattr(notifications, "_queue_emails", lambda ids: sent["emails"].extend(ids))
    return sent


def _owners(n: int) -> list:
    users = [UserFactory() for _ in range(n)]
    for user in users:
        WebhookEndpoint.objects.create(
            user=user,
            url="http://127.0.0.1:9/hook",
            events=["token.expired", "token.expiring", "balance.low"],
            secret_salt="salt",
        )
    return users


def _tokens(users, n: int, *, activated_ago: timedelta, hours: int = 24) -> list[AccessToken]:
    now = timezone.now()
    rows = []
    for i in range(n):
        digest = token_digest(secrets.token_urlsafe(16))
        activated = now - activated_ago
        rows.append(
            AccessToken(
                user=users[i % len(users)],
                digest=digest,
                prefix=digest[:8],
                duration_hours=hours,
                cost=Decimal("18.00"),
                activated_at=activated,
                expires_at=activated + timedelta(hours=hours),
            )
        )
    return AccessToken.objects.bulk_create(rows)


def _count(job, capture) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as ctx, capture(execute=True):
        result = job()
    return _shape(ctx), result


def _shape(ctx) -> int:
    """The number of queries; on SQLite without the extra INSERT batches that its 999-parameter
    limit forces on a bulk insert or update (PostgreSQL writes a chunk in one statement)."""
    queries = [q["sql"] for q in ctx.captured_queries]
    if connection.vendor == "sqlite":
        queries = [
            sql
            for sql in queries
            if not sql.startswith(("INSERT", "SAVEPOINT", "RELEASE")) and " = CASE WHEN " not in sql
        ]
    return len(queries)


def _clean():
    WebhookDelivery.objects.all().delete()
    Notification.objects.all().delete()
    AccessToken.objects.all().delete()


@pytest.mark.django_db
def test_expire_tokens_query_count_is_flat(django_capture_on_commit_callbacks, queued):
    users = _owners(5)
    counts = {}
    for n in (10, 200):
        _clean()
        tokens = _tokens(users, n, activated_ago=timedelta(hours=25))
        counts[n], marked = _count(tokens_expire_due, django_capture_on_commit_callbacks)
        assert sorted(marked) == sorted(t.pk for t in tokens)
        assert AccessToken.objects.filter(expired_at__isnull=True).count() == 0
        assert WebhookDelivery.objects.filter(event="token.expired").count() == n
        # Every token's cache entry is a tombstone that expires (one command per 1 000 keys).
        kv = get_kv()
        for token in tokens:
            assert kv.get(f"tokval:{token.digest}") == {"ok": 0, "r": "expired"}
            if isinstance(kv, RedisKV):
                assert 0 < kv.client.ttl(kv.full_key(f"tokval:{token.digest}")) <= settings.TOKEN_CACHE_TTL
        # Idempotent: a second run takes nothing and fires nothing.
        assert tokens_expire_due() == []
        assert WebhookDelivery.objects.filter(event="token.expired").count() == n
    assert counts[10] == counts[200]


@pytest.mark.django_db
def test_expire_tokens_chunks_grow_queries_by_chunk(django_capture_on_commit_callbacks, queued):
    users = _owners(3)
    _tokens(users, 25, activated_ago=timedelta(hours=25))
    with CaptureQueriesContext(connection) as ctx, django_capture_on_commit_callbacks(execute=True):
        marked = tokens_expire_due(chunk_size=10)
    assert len(marked) == 25
    assert _shape(ctx) < 25  # three chunks, not 25 rows


@pytest.mark.django_db
def test_expiring_soon_query_count_is_flat(django_capture_on_commit_callbacks, queued):
    users = _owners(5)
    counts = {}
    for n in (10, 200):
        _clean()
        _tokens(users, n, activated_ago=timedelta(hours=12))
        counts[n], notified = _count(notifications.notify_expiring_tokens, django_capture_on_commit_callbacks)
        assert len(notified) == n
        assert Notification.objects.filter(kind=NotificationKind.TOKEN_EXPIRING).count() == n
        assert WebhookDelivery.objects.filter(event="token.expiring").count() == n
        # The rerun excludes announced tokens in SQL: nothing new, no duplicate.
        assert notifications.notify_expiring_tokens() == []
        assert Notification.objects.filter(kind=NotificationKind.TOKEN_EXPIRING).count() == n
    assert counts[10] == counts[200]
    assert len(queued["emails"]) == 210


@pytest.mark.django_db
def test_low_balance_query_count_is_flat(django_capture_on_commit_callbacks, queued):
    counts = {}
    for n in (10, 200):
        Notification.objects.all().delete()
        users = [UserFactory() for _ in range(n)]
        for user in users:
            fund(user, "5")
        with CaptureQueriesContext(connection) as ctx, django_capture_on_commit_callbacks(execute=True):
            notified = notifications.notify_low_balance()
        counts[n] = _shape(ctx)
        assert sorted(notified) == sorted(u.pk for u in users)
        assert Notification.objects.filter(kind=NotificationKind.BALANCE_LOW).count() == n
        assert notifications.notify_low_balance() == []  # at most once per 24 h
        # Next round: these users are not low any more.
        for user in users:
            fund(user, "50")
    assert counts[10] == counts[200]


def _sessions(n: int, *, idle: bool) -> list[ProxySession]:
    users = [UserFactory() for _ in range(3)]
    tokens = _tokens(users, n, activated_ago=timedelta(hours=1))
    seen = timezone.now() - (timedelta(minutes=30) if idle else timedelta(seconds=5))
    return ProxySession.objects.bulk_create(
        ProxySession(
            key=secrets.token_hex(16),
            token=t,
            user_id=t.user_id,
            device_id="dev",
            started_at=seen - timedelta(minutes=1),
            last_seen=seen,
        )
        for t in tokens
    )


def _set_counters(sessions, requests: int) -> None:
    state = get_state()
    for s in sessions:
        values = {"n": requests, "bi": 10, "bo": 20}
        if isinstance(state, RedisState):
            state.kv.client.hset(state.kv.full_key(counters_key(s.key)), mapping=values)
        else:
            state.kv.set(counters_key(s.key), values, 600)


@pytest.mark.django_db
def test_close_idle_sessions_query_count_is_flat(django_capture_on_commit_callbacks):
    counts = {}
    for n in (10, 200):
        ProxySession.objects.all().delete()
        sessions = _sessions(n, idle=True)
        _set_counters(sessions, 7)
        counts[n], closed = _count(proxy_services.sessions_close_idle, django_capture_on_commit_callbacks)
        assert sorted(closed) == sorted(s.pk for s in sessions)
        assert ProxySession.objects.filter(ended_at__isnull=True).count() == 0
        assert set(ProxySession.objects.values_list("request_count", flat=True)) == {7}
        assert get_state().counters(sessions[0].key) is None  # dropped after commit
        assert proxy_services.sessions_close_idle() == []
    assert counts[10] == counts[200]


def _counted(sessions, requests: int) -> None:
    """Counters as the proxy writes them (`touch_many`: the increments and the session's mark in
    the dirty set, one pipeline)."""
    entries = [
        {
            "digest": f"digest-{s.pk}",
            "record": {"sid": s.key, "dev": "dev"},
            "ts": time.time(),
            "n": requests,
            "bi": 10,
            "bo": 20,
        }
        for s in sessions
    ]
    async_to_sync(get_state().touch_many)(entries, 600)


@pytest.mark.django_db
def test_flush_counters_query_count_is_flat(django_capture_on_commit_callbacks):
    counts = {}
    for n in (10, 200):
        ProxySession.objects.all().delete()
        sessions = _sessions(n, idle=False)
        _counted(sessions, 3)
        counts[n], updated = _count(
            proxy_services.sessions_flush_counters, django_capture_on_commit_callbacks
        )
        assert updated == n
        assert set(ProxySession.objects.values_list("request_count", flat=True)) == {3}
        assert proxy_services.sessions_flush_counters() == 0  # nothing changed: no write
    assert counts[10] == counts[200]


@pytest.mark.django_db
def test_flush_counters_writes_only_the_sessions_counted_since_the_last_flush():
    """The proxy marks what it counts; a flush with nothing counted reads one empty set and no
    session row, however many sessions are open (only the open-sessions gauge is queried)."""
    sessions = _sessions(30, idle=False)
    _counted(sessions, 2)
    assert proxy_services.sessions_flush_counters(chunk_size=7) == 30
    with CaptureQueriesContext(connection) as idle:
        assert proxy_services.sessions_flush_counters() == 0
    assert len(idle.captured_queries) == 1
    assert idle.captured_queries[0]["sql"].upper().startswith("SELECT COUNT(")
    # Two sessions counted again: only their rows are read and written.
    _counted(sessions[:2], 5)
    assert proxy_services.sessions_flush_counters() == 2
    rows = dict(ProxySession.objects.values_list("pk", "request_count"))
    assert [rows[s.pk] for s in sessions[:3]] == [7, 7, 2]
    # A session ended meanwhile (its final counters written by the close) is left alone.
    ended = sessions[2]
    ProxySession.objects.filter(pk=ended.pk).update(ended_at=timezone.now())
    _counted([ended], 100)
    assert proxy_services.sessions_flush_counters() == 0
    assert ProxySession.objects.get(pk=ended.pk).request_count == 2


@pytest.mark.django_db
def test_flush_counters_puts_the_marks_back_when_a_chunk_fails(monkeypatch):
    sessions = _sessions(5, idle=False)
    _counted(sessions, 4)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(proxy_services, "_write_sessions", broken)
    with pytest.raises(RuntimeError):
        proxy_services.sessions_flush_counters()
    monkeypatch.undo()
    assert proxy_services.sessions_flush_counters() == 5
    assert set(ProxySession.objects.values_list("request_count", flat=True)) == {4}


@pytest.mark.django_db
def test_flush_never_lowers_a_counter_a_concurrent_run_wrote(requires_postgres):
    """The kv holds absolute totals: a flush that read older totals than what is already in the
    row (a slower concurrent run) leaves the row's larger values (PostgreSQL's UPDATE)."""
    (session,) = _sessions(1, idle=False)
    ProxySession.objects.filter(pk=session.pk).update(request_count=9, bytes_in=90)
    session.request_count, session.bytes_in = 3, 30
    proxy_services._write_sessions([session], ["request_count", "bytes_in"])
    session.refresh_from_db()
    assert (session.request_count, session.bytes_in) == (9, 90)


@pytest.mark.django_db
def test_deep_page_reads_rows_by_id_not_through_offset(api_client, monkeypatch):
    monkeypatch.setattr(pagination, "DEFERRED_SLICE_FROM", 5)
    user = UserFactory()
    for _ in range(30):
        fund(user, "1")
    api_client.force_authenticate(user)
    expected = list(
        Transaction.objects.filter(user=user).order_by("-created_at", "-id").values_list("pk", flat=True)
    )[20:25]
    with CaptureQueriesContext(connection) as ctx:
        response = api_client.get("/api/v1/currency/transactions?skip=20&limit=5")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == expected
    assert response.json()["count"] == 30
    tx_queries = [q["sql"] for q in ctx.captured_queries if '"currency_transaction"' in q["sql"]]
    with_offset = [sql for sql in tx_queries if "OFFSET" in sql.upper()]
    # The only OFFSET walks ids (an index-only scan); the rows come by primary key.
    assert with_offset
    for sql in with_offset:
        select_list = sql.upper().split(" FROM ")[0]
        assert "BALANCE_AFTER" not in select_list and "DESCRIPTION" not in select_list
    assert any('"balance_after"' in sql and "OFFSET" not in sql.upper() for sql in tx_queries)


@pytest.mark.django_db
def test_deep_history_page_reads_rows_by_id(client, monkeypatch):
    monkeypatch.setattr(pagination, "DEFERRED_SLICE_FROM", 5)
    user = UserFactory()
    for _ in range(45):
        fund(user, "1")
    client.force_login(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/account/transactions/?page=2")
    assert response.status_code == 200
    row_queries = [
        q["sql"] for q in ctx.captured_queries if '"currency_transaction"."balance_after"' in q["sql"]
    ]
    assert row_queries and all("OFFSET" not in sql.upper() for sql in row_queries)
    page = response.context["page"]
    assert [t.pk for t in page.object_list] == list(
        Transaction.objects.filter(user=user).order_by("-created_at", "-id").values_list("pk", flat=True)
    )[len(page.object_list) : 2 * len(page.object_list)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_expiry_runs_take_each_token_once(requires_postgres, monkeypatch):
    sent = []
    monkeypatch.setattr(webhooks, "_queue", lambda ids: sent.extend(ids))
    users = _owners(4)
    tokens = _tokens(users, 300, activated_ago=timedelta(hours=25))
    results = run_concurrently([lambda: tokens_expire_due(chunk_size=20)] * 3)
    assert all(isinstance(r, list) for r in results), results
    marked = [pk for r in results for pk in r]
    assert sorted(marked) == sorted(t.pk for t in tokens)  # each exactly once
    assert WebhookDelivery.objects.filter(event="token.expired").count() == 300
    assert sorted(sent) == sorted(WebhookDelivery.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_referrals_are_paginated_and_counted_in_full(api_client):
    referrer = UserFactory()
    referred = [UserFactory(referred_by=referrer) for _ in range(3)]
    api_client.force_authenticate(referrer)
    body = api_client.get("/api/v1/users/me/referrals?skip=1&limit=1").json()
    assert body["total_referrals"] == 3
    newest_first = sorted(referred, key=lambda u: (u.date_joined, u.pk), reverse=True)
    assert [row["username"] for row in body["referred_users"]] == [newest_first[1].username]
    assert len(api_client.get("/api/v1/users/me/referrals").json()["referred_users"]) == 3
    response = api_client.get("/api/v1/users/me/referrals?limit=0")
    assert response.status_code == 400 and response.json()["code"] == "invalid_pagination"


@pytest.mark.django_db
def test_staff_user_list_counts_tokens_per_page_not_by_grouping_all(api_client):
    from tokens.services import token_purchase

    staff = UserFactory(is_staff=True, is_superuser=True)
    owner = UserFactory(username="tokenowner")
    fund(owner, "100")
    token_purchase(user=owner, duration_hours=24, scope="full")
    api_client.force_authenticate(staff)
    with CaptureQueriesContext(connection) as ctx:
        body = api_client.get("/api/v1/admin/users?search=kenown").json()
    assert [
        (r["username"], r["tokens_total"], r["tokens_active"], r["tokens_usable"]) for r in body["results"]
    ] == [("tokenowner", 1, 0, 1)]  # bought, not used yet: usable, not active
    assert body["count"] == 1
    user_queries = [q["sql"] for q in ctx.captured_queries if 'FROM "accounts_user"' in q["sql"]]
    assert user_queries and all(
        "GROUP BY" not in sql.split('FROM "accounts_user"', 1)[1] for sql in user_queries
    )


@pytest.mark.django_db
def test_a_batch_of_job_emails_sends_each_once(mailoutbox):
    from notifications.tasks import send_notification_emails

    users = [UserFactory(), UserFactory()]
    created = notifications.notifications_create_many(
        [
            {
                "user": u,
                "kind": NotificationKind.BALANCE_LOW,
                "context": {"balance": "5.00", "threshold": "10.00"},
            }
            for u in users
        ]
    )
    send_notification_emails.apply(args=[[n.pk for n in created]])
    send_notification_emails.apply(args=[[n.pk for n in created]])  # twice: still one email each
    assert sorted(m.to[0] for m in mailoutbox) == sorted(u.email for u in users)
    assert set(Notification.objects.values_list("email_status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_expiring_soon_records_each_token_once_with_the_users_preferences(
    django_capture_on_commit_callbacks, queued
):
    """The set-based decision (PostgreSQL: one INSERT … SELECT … ON CONFLICT per chunk) records
    exactly what the portable path records: key, context, language, email status."""
    wants, quiet, unknown = _owners(3)
    quiet.notify_token_expiring = False
    quiet.save(update_fields=["notify_token_expiring"])
    unknown.language = "xx"
    unknown.save(update_fields=["language"])
    tokens = _tokens([wants, quiet, unknown], 6, activated_ago=timedelta(hours=20, minutes=30))
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        notified = notifications.notify_expiring_tokens(now=now, chunk_size=4)
    assert sorted(notified) == sorted(t.pk for t in tokens)
    rows = {
        n.context["token_id"]: n for n in Notification.objects.filter(kind=NotificationKind.TOKEN_EXPIRING)
    }
    assert len(rows) == 6
    for token in tokens:
        n = rows[token.pk]
        assert n.user_id == token.user_id
        assert n.dedupe_key == notifications.token_expiring_dedupe_key(token)
        assert n.context == {
            "token_id": token.pk,
            "prefix": token.prefix,
            "duration_hours": 24,
            "scope": token.scope,
            "expires_at": token.expires_at.isoformat(),
            "hours_left": 3,
        }
        assert n.language == ("ru" if token.user_id == unknown.pk else token.user.language)
        if token.user_id == quiet.pk:
            assert (n.email_status, n.last_error) == ("skipped", notifications.EMAIL_TURNED_OFF)
        else:
            assert (n.email_status, n.last_error) == ("pending", "")
    assert sorted(queued["emails"]) == sorted(n.pk for n in rows.values() if n.email_status == "pending")
    deliveries = WebhookDelivery.objects.filter(event="token.expiring")
    assert sorted(d.payload["data"]["token_id"] for d in deliveries) == sorted(t.pk for t in tokens)
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_expiring_tokens(now=now, chunk_size=4) == []
    assert Notification.objects.count() == 6 and deliveries.count() == 6


@pytest.mark.django_db
def test_low_balance_rerun_with_everyone_told_is_one_chunk_query(django_capture_on_commit_callbacks, queued):
    """Users told within the period are left out before any chunk is locked: the rerun does not
    walk (and lock) every low user chunk by chunk."""
    with CaptureQueriesContext(connection) as empty:
        assert notifications.notify_low_balance(chunk_size=10) == []
    users = [UserFactory() for _ in range(25)]
    for user in users:
        fund(user, "5")
    with django_capture_on_commit_callbacks(execute=True):
        assert len(notifications.notify_low_balance(chunk_size=10)) == 25
    with CaptureQueriesContext(connection) as rerun:
        assert notifications.notify_low_balance(chunk_size=10) == []
    assert _shape(rerun) == _shape(empty)
    # Told more than LOW_BALANCE_NOTIFY_EVERY_HOURS ago: due again.
    Notification.objects.update(created_at=timezone.now() - timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        assert sorted(notifications.notify_low_balance(chunk_size=10)) == sorted(u.pk for u in users)
    assert Notification.objects.filter(kind=NotificationKind.BALANCE_LOW).count() == 50


@pytest.mark.django_db
def test_low_balance_walks_the_low_users_index_with_one_probe_each(
    django_capture_on_commit_callbacks, queued
):
    """The chunk query walks the partial index of low users (`user_low_balance_idx`), not the
    whole primary key, and probes each low user's last notice once (not twice, as
    `IS NULL OR <=` over the annotation would)."""
    users = [UserFactory() for _ in range(3)]
    for user in users:
        fund(user, "5")
    with django_capture_on_commit_callbacks(execute=True):
        assert len(notifications.notify_low_balance()) == 3
    with CaptureQueriesContext(connection) as rerun:
        assert notifications.notify_low_balance() == []
    (chunk,) = [q["sql"] for q in rerun.captured_queries if "accounts_user" in q["sql"]]
    where = chunk[chunk.index(" WHERE ") :]
    assert where.count("notifications_notification") == 1
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")  # the test tables are tiny: the plan's choice
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + chunk)
            plan = "\n".join(r[0] for r in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
        assert "user_low_balance_idx" in plan


@pytest.mark.django_db
def test_counters_many_reads_each_session_like_counters():
    """One reply for a chunk of sessions (Redis: a server-side loop), the same values as one
    read per session, None for a session without counters."""
    sessions = _sessions(3, idle=False)
    _set_counters(sessions[:2], 4)
    state = get_state()
    sids = [s.key for s in sessions] + ["no-such-session"]
    assert state.counters_many(sids) == [state.counters(sid) for sid in sids]
    assert state.counters_many(sids)[0]["n"] == 4
    assert state.counters_many(sids)[2:] == [None, None]
    assert state.counters_many([]) == []


@pytest.mark.django_db
def test_expiring_soon_marks_announced_tokens_and_a_rerun_reads_only_unmarked_ones(
    django_capture_on_commit_callbacks, queued
):
    """The watermark: an announced token is marked for its current expiry, and the rerun decides
    from the mark (a deleted notice is not sent again); a token announced before the mark existed
    is marked without a second notice; a moved expiry (renewal) differs from the mark: announced
    again for the new expiry."""
    users = _owners(2)
    tokens = _tokens(users, 6, activated_ago=timedelta(hours=12))
    old = tokens[5]
    now = timezone.now()
    # Announced before the watermark existed: its notice is there, its mark is not.
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_expiring_tokens(now=now, chunk_size=4) == [t.pk for t in tokens]
    marked = dict(AccessToken.objects.values_list("pk", "expiring_notified_for"))
    assert all(marked[t.pk] == t.expires_at for t in tokens)
    AccessToken.objects.filter(pk=old.pk).update(expiring_notified_for=None)
    Notification.objects.filter(context__token_id=tokens[0].pk).delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_expiring_tokens(now=now, chunk_size=4) == []
    assert AccessToken.objects.get(pk=old.pk).expiring_notified_for == old.expires_at
    assert Notification.objects.filter(context__token_id=old.pk).count() == 1
    assert not Notification.objects.filter(context__token_id=tokens[0].pk).exists()
    # The expiry moves (as a renewal moves it): announced again.
    moved = tokens[1]
    AccessToken.objects.filter(pk=moved.pk).update(expires_at=moved.expires_at + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_expiring_tokens(now=now, chunk_size=4) == [moved.pk]
    assert Notification.objects.filter(context__token_id=moved.pk).count() == 2
    assert len(queued["emails"]) == 7


@pytest.mark.django_db
def test_webhook_endpoint_changelist_reads_the_page_then_its_owners(client):
    """The endpoints' owners come in a second query by primary key for the page's rows: joined,
    PostgreSQL hashed every user before sorting and cutting the page. The query count does not
    grow with the rows shown."""
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    counts = {}
    for n in (3, 30):
        WebhookEndpoint.objects.all().delete()
        owners = _owners(n)
        url = "/admin/webhooks/webhookendpoint/?is_active__exact=1"
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(url).content.decode()
        assert all(owner.username in page for owner in owners)
        counts[n] = len(ctx.captured_queries)
        endpoint_rows = [
            q["sql"] for q in ctx.captured_queries if 'FROM "webhooks_webhookendpoint"' in q["sql"]
        ]
        assert endpoint_rows and not any("accounts_user" in sql for sql in endpoint_rows)
    assert counts[3] == counts[30]


@pytest.mark.django_db
def test_dashboard_reads_sessions_once_and_live_counters_per_chunk(client, monkeypatch):
    """The admin dashboard groups the period's sessions once (its table's totals are the chart's
    sum) and reads the open sessions' live counters with one kv call per chunk, not per session."""
    from django.urls import reverse

    from analytics import selectors

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    sessions = _sessions(30, idle=False)
    _counted(sessions, 2)
    state_class = type(get_state())
    many = state_class.counters_many
    calls = []

    def counted_many(self, sids):
        calls.append(len(sids))
        return many(self, sids)

    monkeypatch.setattr(state_class, "counters", lambda self, sid: pytest.fail("one kv read per session"))
    monkeypatch.setattr(state_class, "counters_many", counted_many)
    monkeypatch.setattr(selectors, "LIVE_CHUNK", 20)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("analytics-dashboard") + "?period=month")
    assert response.status_code == 200
    assert len([q for q in ctx.captured_queries if "proxy_proxysession" in q["sql"]]) == 2
    assert calls == [20, 10]
    stats = response.context["stats"]
    assert (stats["total_proxy_requests"], stats["proxy_sessions"]) == (60, 30)
    chart = next(c for c in response.context["charts"] if c["key"] == "proxy_requests")
    assert chart["total"] == 60


@pytest.mark.django_db
def test_daily_buckets_of_sessions_have_expression_statistics(requires_postgres):
    """PostgreSQL knows how many days the sessions' daily buckets span (CREATE STATISTICS on the
    dashboard's exact expression): it hashes a month into ~30 groups instead of sorting it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_statisticsobjdef_expressions(oid)::text FROM pg_statistic_ext "
            "WHERE stxname = 'session_started_day_stats'"
        )
        (expressions,) = cursor.fetchone()
    assert "date_trunc('day'::text, (started_at AT TIME ZONE 'UTC'::text))" in expressions


@pytest.mark.django_db
def test_auto_renewal_query_count_is_flat(django_capture_on_commit_callbacks, queued):
    """Chunked renewal: locks, decisions, the ledger's rows and their audit entries
    (`balance_change_many`), token and renewal rows, `token.renew` audit entries, notices,
    webhooks and cache entries: a number of statements per chunk, none per renewal (was 5 per
    renewal through `balance_change`, ~19 before the chunks)."""
    from audit.models import AuditLog
    from renewals.models import TokenRenewal
    from renewals.services import tokens_renew_due

    counts = {}
    for n in (10, 200):
        TokenRenewal.objects.all().delete()
        _clean()
        users = _owners(5)
        for user in users:
            fund(user, "10000")
        tokens = _tokens(users, n, activated_ago=timedelta(hours=23, minutes=30))
        AccessToken.objects.filter(pk__in=[t.pk for t in tokens]).update(auto_renew=True)
        with CaptureQueriesContext(connection) as ctx, django_capture_on_commit_callbacks(execute=True):
            run = tokens_renew_due()
        counts[n] = _shape(ctx)
        assert sorted(run.renewed) == sorted(t.pk for t in tokens)
        assert TokenRenewal.objects.count() == n
        assert Notification.objects.filter(kind=NotificationKind.AUTO_RENEW_DONE).count() == n
        renewed = AuditLog.objects.filter(action="token.renew", resource_id__in=[str(t.pk) for t in tokens])
        assert renewed.count() == n
        purchases = Transaction.objects.filter(reference__in=[f"token:{t.pk}" for t in tokens])
        assert purchases.count() == n
        for user in users:  # several renewals per owner in one chunk: running balances
            user.refresh_from_db()
            running = Decimal(0)
            for amount, balance_after in (
                Transaction.objects.filter(user=user).order_by("id").values_list("amount", "balance_after")
            ):
                running += amount
                assert balance_after == running
            assert user.balance == running
        assert tokens_renew_due().renewed == []  # renewed: out of the window
    assert counts[10] == counts[200]


@pytest.mark.django_db
def test_auto_renewal_takes_every_chunk_in_one_run(django_capture_on_commit_callbacks, queued):
    """The keyset position is the chunk's last token as read, not as renewed (a renewal moves its
    expiry out of the window: the next chunk must still start after the old one)."""
    from renewals.models import TokenRenewal
    from renewals.services import tokens_renew_due

    users = _owners(3)
    for user in users:
        fund(user, "1000")
    tokens = _tokens(users, 12, activated_ago=timedelta(hours=23, minutes=30))
    AccessToken.objects.filter(pk__in=[t.pk for t in tokens]).update(auto_renew=True)
    with django_capture_on_commit_callbacks(execute=True):
        run = tokens_renew_due(chunk_size=5)
    assert sorted(run.renewed) == sorted(t.pk for t in tokens)
    assert TokenRenewal.objects.count() == 12


@pytest.mark.django_db
def test_token_digest_has_only_its_unique_index(requires_postgres):
    """No `varchar_pattern_ops` twin on the digest (unused: every token write paid for it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'tokens_accesstoken'::regclass"
        )
        definitions = [row[0] for row in cursor.fetchall()]
    on_digest = [d for d in definitions if "(digest" in d]
    assert len(on_digest) == 1 and "UNIQUE" in on_digest[0]


@pytest.mark.django_db
def test_audit_retention_is_one_statement_per_batch():
    """A batch is one `DELETE … WHERE id IN (SELECT … LIMIT n)`; nothing to delete is one
    statement; recent entries stay."""
    from audit.models import AuditLog
    from audit.services import audit_record, audit_retention_purge

    old = timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS + 1)
    counts = {}
    for n in (10, 200):
        rows = [audit_record(action="test.old") for _ in range(n)]
        AuditLog.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=old)
        keep = audit_record(action="test.recent")
        with CaptureQueriesContext(connection) as ctx:
            assert audit_retention_purge() == n
        counts[n] = len(ctx.captured_queries)
        assert AuditLog.objects.filter(pk=keep.pk).exists()
    assert counts[10] == counts[200] == 1
    with CaptureQueriesContext(connection) as nothing:
        assert audit_retention_purge() == 0
    assert len(nothing.captured_queries) == 1
    rows = [audit_record(action="test.old") for _ in range(7)]
    AuditLog.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=old)
    with CaptureQueriesContext(connection) as batches:
        assert audit_retention_purge(batch_size=3) == 7
    assert len(batches.captured_queries) == 3  # 3 + 3 + 1
    assert not AuditLog.objects.filter(action="test.old").exists()
