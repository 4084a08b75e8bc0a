import os

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import UserFactory
from zenzefi.kv import get_kv


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (our key prefix only: never flush a shared Redis)."""
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
    get_kv().clear()
    yield


@pytest.fixture
def requires_postgres(db):
    """Race tests need real row locks. Skipped with the reason on SQLite; a failure in CI."""
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: set DATABASE_URL to PostgreSQL.")
        pytest.skip("needs PostgreSQL (SELECT ... FOR UPDATE); set DATABASE_URL to run it")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def auth_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client
