from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY

from accounts.models import User
from tests.factories import fund
from tests.token_checks import check_token
from tokens import services, validation
from tokens.models import AccessToken
from zenzefi.kv import CacheKV, RedisKV, get_kv

pytestmark = pytest.mark.django_db


def metric(status: str) -> float:
    return REGISTRY.get_sample_value("token_validations_total", {"status": status}) or 0.0


@pytest.fixture
def bought(user):
    fund(user, "100")
    return services.token_purchase(user=user, duration_hours=24)


def second_connection():
    """A separate client to the same shared cache, as another process would have."""
    if settings.REDIS_URL:
        return RedisKV(settings.REDIS_URL, settings.CACHE_KEY_PREFIX)
    return CacheKV()


def test_miss_then_fill_then_hit(bought, django_assert_num_queries):
    hits, misses = metric("cache_hit"), metric("cache_miss")
    with django_assert_num_queries(1):
        first = check_token(bought.plaintext)
    assert first.valid and first.token_id == bought.token.pk and first.user_id == bought.token.user_id
    assert first.scope == "full" and not first.activated
    with django_assert_num_queries(0):
        second = check_token(bought.plaintext)
    assert second == first
    assert metric("cache_miss") == misses + 1 and metric("cache_hit") == hits + 1


def test_unknown_tokens_are_cached_briefly(db, django_assert_num_queries):
    invalid = metric("invalid")
    with django_assert_num_queries(1):
        assert check_token("x" * 64).reason == "unknown"
    with django_assert_num_queries(0):
        assert check_token("x" * 64).reason == "unknown"
    assert metric("invalid") == invalid + 2
    ttl = validation._ttl({"ok": 0, "r": "unknown"}, 0)
    assert ttl == settings.TOKEN_NEGATIVE_CACHE_TTL < settings.TOKEN_CACHE_TTL


def test_revoke_is_visible_at_once_through_another_connection(
    bought, user, django_capture_on_commit_callbacks
):
    other = second_connection()
    assert check_token(bought.plaintext, kv=other).valid  # cached as valid
    with django_capture_on_commit_callbacks(execute=True):
        services.token_revoke(token_id=bought.token.pk, owner=user, actor=user)
    check = check_token(bought.plaintext, kv=other)
    assert not check.valid and check.reason == "revoked"


def test_a_late_fill_cannot_resurrect_a_revoked_token(bought, user, django_capture_on_commit_callbacks):
    stale = validation._load(bought.token.digest)  # read before the revoke committed
    with django_capture_on_commit_callbacks(execute=True):
        services.token_revoke(token_id=bought.token.pk, owner=user, actor=user)
    get_kv().set(validation._key(bought.token.digest), stale, 300, nx=True)  # the racing fill
    assert check_token(bought.plaintext).reason == "revoked"


def test_expiry(bought, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.token_activate(token=bought.token, now=timezone.now() - timedelta(hours=23, minutes=59))
    check = check_token(bought.plaintext)
    assert check.valid and check.activated
    # Cached entry never outlives the token: TTL is capped by the time left.
    record = get_kv().get(validation._key(bought.token.digest))
    assert validation._ttl(record, timezone.now().timestamp()) <= 61
    AccessToken.objects.filter(pk=bought.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Even a still-cached positive entry is checked against its expiry at read time.
    get_kv().set(validation._key(bought.token.digest), {**record, "e": timezone.now().timestamp() - 1}, 60)
    assert check_token(bought.plaintext).reason == "expired"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.tokens_expire_due() == [bought.token.pk]
    assert check_token(bought.plaintext, kv=second_connection()).reason == "expired"


def test_activation_drops_the_entry(bought, django_capture_on_commit_callbacks):
    assert not check_token(bought.plaintext).activated
    with django_capture_on_commit_callbacks(execute=True):
        services.token_activate(token=bought.token)
    assert check_token(bought.plaintext).activated


def test_inactive_user(bought, user):
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert check_token(bought.plaintext).reason == "inactive_user"


def test_forget_user_drops_cached_entries(bought, user):
    assert check_token(bought.plaintext).valid
    User.objects.filter(pk=user.pk).update(is_active=False)
    validation.forget_user(user.pk)
    assert check_token(bought.plaintext).reason == "inactive_user"


def test_async_validation_matches_and_hits_without_thread_hop(bought, monkeypatch):
    filled = check_token(bought.plaintext)  # fills the cache
    if settings.REDIS_URL:
        # On Redis a cache hit is async-native: no sync_to_async (thread hop) at all.
        monkeypatch.setattr(validation, "sync_to_async", lambda *a, **k: pytest.fail("thread hop on a hit"))
    assert check_token(bought.plaintext) == filled


@pytest.mark.django_db(transaction=True)
def test_async_miss_loads_from_database(user):
    fund(user, "100")
    issued = services.token_purchase(user=user, duration_hours=1, scope="certificates_only")
    check = check_token(issued.plaintext)
    assert check.valid and check.scope == "certificates_only" and check.token_id == issued.token.pk
    assert check_token("nope" * 16).reason == "unknown"


def test_deactivation_tombstone_beats_a_racing_fill(bought, user):
    stale = validation._load(bought.token.digest)  # read while the user was still active
    User.objects.filter(pk=user.pk).update(is_active=False)
    validation.forget_user(user.pk)
    get_kv().set(validation._key(bought.token.digest), stale, 300, nx=True)  # the racing fill
    assert check_token(bought.plaintext).reason == "inactive_user"
    User.objects.filter(pk=user.pk).update(is_active=True)
    validation.forget_user(user.pk)  # reactivated: entries dropped, the token works again
    assert check_token(bought.plaintext).valid
