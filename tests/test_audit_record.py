"""`audit_record` takes who and where explicitly (actor, ip, user agent), with no request object;
`request_origin` reads them from a Django request for views; the proxy passes what it has."""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

from datetime import timedelta

import time_machine
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import User
from audit.models import AuditLog
from audit.services import audit_record, audit_record_many, request_origin
from tests.factories import UserFactory
from tests.upstream import (  # noqa: F401
    creds,
    customer,
    live_platform,
    proxy,
    token,
    upstream_server,
)


def test_actor_is_a_user_or_a_user_id(db):
    user = UserFactory()
    assert audit_record(action="t.instance", actor=user).actor_id == user.pk
    assert audit_record(action="t.id", actor=user.pk).actor_id == user.pk
    assert audit_record(action="t.system").actor_id is None
    # Nobody to name: an anonymous request's user, an unsaved user.
    assert audit_record(action="t.anonymous", actor=AnonymousUser()).actor_id is None
    assert audit_record(action="t.unsaved", actor=User(username="ghost")).actor_id is None
    assert audit_record(action="t.no_id", actor=0).actor_id is None
    assert AuditLog.objects.count() == 6


def test_valid_addresses_are_kept_in_canonical_form(db):
    assert audit_record(action="t", ip="203.0.113.7").ip == "203.0.113.7"
    assert audit_record(action="t", ip=" 10.0.0.1 ").ip == "10.0.0.1"
    entry = audit_record(action="t", ip="2001:DB8:0:0::1")
    entry.refresh_from_db()
    assert entry.ip == "2001:db8::1"


def test_a_bad_address_is_stored_as_none_and_the_entry_still_written(db):
    for bad in ("not-an-ip", "999.1.1.1", "10.0.0.1, 10.0.0.2", "", None, "unix:/run/uvicorn.sock"):
        entry = audit_record(action="t.bad_ip", ip=bad, details={"bad": str(bad)})
        entry.refresh_from_db()
        assert entry.ip is None
    assert AuditLog.objects.filter(action="t.bad_ip").count() == 6


def test_user_agent_is_cut_to_the_column(db):
    entry = audit_record(action="t", user_agent="A" * 600)
    entry.refresh_from_db()
    assert entry.user_agent == "A" * 512
    assert audit_record(action="t", user_agent=None).user_agent == ""
    assert audit_record(action="t").user_agent == ""


def test_request_origin_reads_the_server_address_never_forwarded_for():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Browser/1", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert request_origin(request) == {"ip": "198.51.100.4", "user_agent": "Browser/1"}
    bad = RequestFactory().get("/", REMOTE_ADDR="garbage")
    assert request_origin(bad) == {"ip": None, "user_agent": ""}
    assert request_origin(None) == {"ip": None, "user_agent": ""}


def test_a_view_records_its_clients_address_and_agent(client, db):
    """One write path end to end: a failed sign-in is audited with the caller's ip and agent."""
    UserFactory(username="alice")
    client.post(
        "/api/v1/auth/login",
        {"username": "alice", "password": "wrong-password"},
        content_type="application/json",
        REMOTE_ADDR="192.0.2.9",
        HTTP_USER_AGENT="Tester/2",
    )
    entry = AuditLog.objects.get(action="auth.login_failed")
    assert (entry.ip, entry.user_agent) == ("192.0.2.9", "Tester/2")


def test_the_proxys_audit_rows_carry_the_real_actor_address_and_agent(proxy, token, settings):
    row, plain = token
    agent = {"User-Agent": "ProxyClient/3"}
    settings.PROXY_RATE_LIMIT_PER_MINUTE = 3  # the conflict counts too: the fourth request is refused
    # Early in a minute: all four requests share one rate window.
    with time_machine.travel(timezone.now().replace(second=1) + timedelta(minutes=1), tick=True):
        assert proxy.get("/echo/1", headers={**creds(plain, "dev-A"), **agent}).status_code == 200
        assert proxy.get("/echo/2", headers={**creds(plain, "dev-B"), **agent}).status_code == 409
        assert proxy.get("/echo/3", headers={**creds(plain, "dev-A"), **agent}).status_code == 200
        assert proxy.get("/echo/4", headers={**creds(plain, "dev-A"), **agent}).status_code == 429
    for action in ("token.activate", "proxy.device_conflict", "rate_limit.hit"):
        entry = AuditLog.objects.get(action=action, resource_id=str(row.pk))
        assert entry.actor_id == row.user_id, action
        assert entry.ip == "127.0.0.1", action
        assert entry.user_agent == "ProxyClient/3", action


def test_many_entries_are_one_insert_normalised_like_one(db, django_assert_num_queries):
    """`audit_record_many`: the same normalisation as `audit_record` (actor, address, agent,
    secret keys dropped, values as text), written in one statement."""
    user = UserFactory()
    entry = {
        "action": "t.many",
        "actor": user,
        "resource_type": "token",
        "resource_id": 7,
        "details": {"price": 1, "token": "secret!", "when": timezone.now().date()},
        "ip": " ::ffff:10.0.0.1 ",
        "user_agent": "x" * 600,
    }
    with django_assert_num_queries(1):
        rows = audit_record_many([entry, {**entry, "actor": user.pk, "ip": "not-an-ip", "resource_id": ""}])
    single = AuditLog.objects.get(pk=audit_record(**entry).pk)
    first, second = AuditLog.objects.filter(pk__in=[r.pk for r in rows]).order_by("id")
    for field in ("actor_id", "action", "resource_type", "resource_id", "details", "ip", "user_agent"):
        assert getattr(first, field) == getattr(single, field)
    assert "token" not in first.details and first.details["when"] == str(timezone.now().date())
    assert (second.actor_id, second.ip, second.resource_id) == (user.pk, None, "")
    assert audit_record_many([]) == []
