"""The admin dashboard: proxy traffic counted by the one function the API's global-stats uses
(flushed session counters plus the not-yet-flushed part of open sessions), totals that agree
with the table and with global-stats, labelled time axis, vendored chart library."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from analytics import selectors
from analytics.views import dashboard_context
from proxy.models import ProxySession
from proxy.state import counters_key, get_state
from tests.factories import UserFactory, fund
from tokens import services as token_services

pytestmark = pytest.mark.django_db


def seed_traffic() -> dict:
    """Purchases, sign-ups and proxy sessions in the last day; one open session whose latest
    requests are still only in the key-value store (the flush job has not run yet)."""
    user = UserFactory()
    fund(user, "200")
    token = token_services.token_purchase(user=user, duration_hours=24).token  # 18.00
    token_services.token_purchase(user=user, duration_hours=1)  # 1.00
    now = timezone.now()
    ProxySession.objects.create(
        key=secrets.token_hex(8),
        token=token,
        user=user,
        device_id="d1",
        started_at=now - timedelta(hours=3),
        last_seen=now - timedelta(hours=2),
        ended_at=now - timedelta(hours=2),
        request_count=40,
        bytes_in=100,
        bytes_out=900,
    )
    live = ProxySession.objects.create(
        key=secrets.token_hex(8),
        token=token,
        user=user,
        device_id="d1",
        started_at=now - timedelta(minutes=20),
        last_seen=now - timedelta(minutes=20),
        request_count=2,  # flushed so far
    )
    # The hot path's absolute totals: 12 requests, 10 of them not flushed yet.
    _write_counters(live.key, n=12, bi=10, bo=990)
    return {"user": user, "requests": 40 + 12, "bytes": 1000 + 1000}


def _write_counters(sid: str, **values) -> None:
    state = get_state()
    if hasattr(state.kv, "client"):  # Redis: a hash of absolute totals
        state.kv.client.hset(
            state.kv.full_key(counters_key(sid)), mapping={k: str(v) for k, v in values.items()}
        )
    else:  # the embedded default's cache-backed store
        state.kv.set(counters_key(sid), {**values, "ls": timezone.now().timestamp()}, 600)


@pytest.fixture
def staff():
    return User.objects.create_superuser(username="boss", email="boss@example.com", password="x-Pass-12345")


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_dashboard_totals_agree_with_global_stats_and_count_unflushed_traffic(staff, period):
    seeded = seed_traffic()
    api = APIClient()
    api.force_authenticate(staff)
    stats = api.get("/api/v1/analytics/admin/global-stats", {"period": period}).json()
    assert stats["total_proxy_requests"] == seeded["requests"]  # not 0: live counters included
    assert stats["total_bytes_transferred"] == seeded["bytes"]
    context = dashboard_context(period)
    charts = {chart["key"]: chart for chart in context["charts"]}
    assert charts["proxy_requests"]["total"] == stats["total_proxy_requests"]
    assert charts["purchases"]["total"] == stats["token_purchases"] == 2
    assert charts["revenue"]["total"] == Decimal(stats["revenue_znc"]) == Decimal("19.00")
    assert charts["new_users"]["total"] == stats["new_users"] == 2
    # The same function counts for the API and the charts.
    window = selectors.period_window(period)
    assert selectors.proxy_traffic(start=window[1], end=window[2])[None]["requests"] == seeded["requests"]


def test_dashboard_page_shows_labelled_axes_units_and_the_vendored_chart_library(staff):
    seed_traffic()
    staff.language = "en"
    staff.save(update_fields=["language"])
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/analytics/?period=week").content.decode()
    assert re.search(r'<td id="stat-requests">52</td>', page)
    assert 'data-total="proxy_requests">52</span> pcs' in page
    assert "/static/vendor/chartjs/chart.umd.min.js" in page and "cdn" not in page.lower()
    assert '"x_title": "Date, UTC"' in page and '"unit": "ZNC"' in page
    today = timezone.now().strftime("%Y-%m-%d")
    assert f'"{today}"' in page  # the axis labels are dates
    day = client.get("/admin/analytics/").content.decode()
    assert '"x_title": "Hour starting, UTC"' in day


def test_chart_library_is_vendored_with_its_license():
    vendor = Path(settings.BASE_DIR) / "static" / "vendor" / "chartjs"
    assert (vendor / "chart.umd.min.js").read_text().startswith("/*!\n * Chart.js v4.6.1")
    assert "MIT License" in (vendor / "LICENSE.md").read_text()


def test_active_tokens_mean_activated_unexpired_unrevoked_everywhere(staff):
    from analytics.gauges import gauge_figures
    from tokens.models import AccessToken

    user = UserFactory()
    fund(user, "100")
    waiting = token_services.token_purchase(user=user, duration_hours=1).token
    running = token_services.token_purchase(user=user, duration_hours=24).token
    token_services.token_activate(token=running)
    expired = token_services.token_purchase(user=user, duration_hours=1).token
    token_services.token_activate(token=expired, now=timezone.now() - timedelta(hours=2))
    assert list(AccessToken.objects.active().values_list("pk", flat=True)) == [running.pk]
    assert gauge_figures()["active_tokens"] == 1
    assert selectors.usage_for_user(user=user, period="day")["active_tokens"] == 1
    api = APIClient()
    api.force_authenticate(user)
    mine = api.get("/api/v1/tokens/my-tokens", {"active_only": "true"}).json()["results"]
    assert [t["id"] for t in mine] == [running.pk]
    admin = Client()
    admin.force_login(staff)
    page = admin.get("/admin/tokens/accesstoken/?state=active").content.decode()
    assert f"/admin/tokens/accesstoken/{running.pk}/change/" in page
    assert f"/admin/tokens/accesstoken/{waiting.pk}/change/" not in page
    customer = Client()
    customer.force_login(user)
    dashboard = customer.get("/account/").content.decode()
    assert 'data-testid="waiting-tokens"' in dashboard and waiting.prefix in dashboard


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_revenue_is_counted_once_the_same_everywhere_gift_sales_included(
    staff, period, django_capture_on_commit_callbacks
):
    """Issue 15: one revenue (currency.selectors.sales): tokens, bundles and gift codes bought,
    before refunds; the staff API's global-stats, the admin dashboard's table and charts and
    the `znc_revenue_total` metric count the same ZNC."""
    from prometheus_client import REGISTRY

    from bundles.models import TokenBundle
    from bundles.services import bundle_purchase
    from currency.selectors import sales
    from gifts.services import gift_purchase

    def metric() -> float:
        return REGISTRY.get_sample_value("znc_revenue_total") or 0.0

    buyer = UserFactory()
    fund(buyer, "700")
    before = metric()
    with django_capture_on_commit_callbacks(execute=True):
        token = token_services.token_purchase(user=buyer, duration_hours=24).token  # 18.00
        bundle_purchase(user=buyer, bundle_id=TokenBundle.objects.get(name="Month Duo").pk)  # 510.00
        gift_purchase(buyer=buyer, duration_hours=168, scope="full")  # 100.00, a GIFT row
        token_services.token_revoke(token_id=token.pk, owner=buyer, actor=buyer)  # refund 18.00
    expected = Decimal("628.00")
    assert metric() == pytest.approx(before + float(expected))

    api = APIClient()
    api.force_authenticate(staff)
    stats = api.get("/api/v1/analytics/admin/global-stats", {"period": period}).json()
    assert Decimal(stats["revenue_znc"]) == expected  # the gift sale counts
    assert stats["token_purchases"] == 3 and Decimal(stats["refunds_znc"]) == Decimal("18.00")
    context = dashboard_context(period)
    assert Decimal(context["stats"]["revenue_znc"]) == expected
    charts = {chart["key"]: chart for chart in context["charts"]}
    assert charts["revenue"]["total"] == expected and charts["purchases"]["total"] == 3
    window = selectors.period_window(period)
    assert sales(start=window[1], end=window[2])[None] == {"revenue": expected, "purchases": 3}
