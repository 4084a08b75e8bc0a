import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import User
from proxy.models import ProxySession
from tests.factories import UserFactory, fund, staff_with
from tokens import services as token_services

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/analytics/usage"
GLOBAL = "/api/v1/analytics/admin/global-stats"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def session(user, token, *, started_ago, minutes, requests, bytes_in, bytes_out, open_=False):
    started = NOW - started_ago
    return ProxySession.objects.create(
        key=secrets.token_hex(8),
        token=token,
        user=user,
        device_id="dev-1",
        started_at=started,
        last_seen=started + timedelta(minutes=minutes),
        ended_at=None if open_ else started + timedelta(minutes=minutes),
        request_count=requests,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
    )


@pytest.fixture
def dataset():
    """Built at NOW − 40 days for the "old" part and around NOW for the rest."""
    with time_machine.travel(NOW - timedelta(days=40), tick=False):
        old_user = UserFactory()
        fund(old_user, "1000")
        token_services.token_purchase(user=old_user, duration_hours=168)  # 100, outside every period
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        mid_user = UserFactory()
        fund(mid_user, "100")
        token_services.token_purchase(user=mid_user, duration_hours=12)  # 10, in week and month
    with time_machine.travel(NOW - timedelta(hours=5), tick=False):
        user = UserFactory()
        fund(user, "500")
        running = token_services.token_purchase(user=user, duration_hours=24).token  # 18
        token_services.token_activate(token=running, now=NOW - timedelta(hours=5))
        expired = token_services.token_purchase(user=user, duration_hours=1).token  # 1
        token_services.token_activate(token=expired, now=NOW - timedelta(hours=5))
        revoked = token_services.token_purchase(user=user, duration_hours=12).token  # 10, refunded 10
        token_services.token_revoke(token_id=revoked.pk, actor=user, owner=user)
    # Sessions of `user`: two today (one still open), one 3 days ago, one 20 days ago, one 40 days ago.
    session(
        user, running, started_ago=timedelta(hours=4), minutes=30, requests=100, bytes_in=1000, bytes_out=9000
    )
    session(
        user,
        running,
        started_ago=timedelta(hours=1),
        minutes=10,
        requests=20,
        bytes_in=50,
        bytes_out=450,
        open_=True,
    )
    session(
        user, running, started_ago=timedelta(days=3), minutes=60, requests=300, bytes_in=0, bytes_out=3000
    )
    session(user, running, started_ago=timedelta(days=20), minutes=120, requests=7, bytes_in=1, bytes_out=2)
    session(user, running, started_ago=timedelta(days=40), minutes=5, requests=999, bytes_in=9, bytes_out=9)
    # Someone else's traffic today never shows in `user`'s figures.
    session(mid_user, running, started_ago=timedelta(hours=2), minutes=1, requests=5, bytes_in=5, bytes_out=5)
    return user


def get(client, url, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(url, params)


def test_usage_figures_per_period(dataset):
    client = APIClient()
    client.force_authenticate(dataset)
    day = get(client, USAGE, period="day")
    assert day.status_code == 200, day.content
    assert day.json() == {
        "period": "day",
        "start_time": "2026-03-09T12:00:00Z",
        "end_time": "2026-03-10T12:00:00Z",
        "total_requests": 120,
        "total_bytes_transferred": 10500,
        "active_sessions": 1,
        "active_tokens": 1,  # the 24 h one; the 1 h one expired, the 12 h one was revoked
        "avg_session_duration_minutes": 20.0,
    }
    week = get(client, USAGE, period="week").json()
    assert week["total_requests"] == 420 and week["total_bytes_transferred"] == 13500
    assert week["avg_session_duration_minutes"] == pytest.approx((30 + 10 + 60) / 3, abs=0.01)
    month = get(client, USAGE, period="month").json()
    assert month["start_time"] == "2026-02-08T12:00:00Z"
    assert month["total_requests"] == 427 and month["total_bytes_transferred"] == 13503
    assert month["avg_session_duration_minutes"] == 55.0
    assert get(client, USAGE).json()["period"] == "day"


def test_usage_of_a_user_without_traffic_is_zero(user, auth_client):
    body = get(auth_client, USAGE, period="week").json()
    assert body["total_requests"] == 0 and body["total_bytes_transferred"] == 0
    assert body["avg_session_duration_minutes"] == 0 and body["active_tokens"] == 0


@pytest.mark.parametrize("period", ["year", "DAY", "1", "days"])
def test_bad_period_is_400(auth_client, period):
    response = get(auth_client, USAGE, period=period)
    assert response.status_code == 400 and response.json()["code"] == "invalid_period"


def test_anonymous_is_401(api_client):
    assert api_client.get(USAGE).status_code == 401
    assert api_client.get(GLOBAL).status_code == 401


def test_global_stats_are_staff_only(dataset):
    client = APIClient()
    client.force_authenticate(dataset)
    response = get(client, GLOBAL, period="day")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_global_stats_figures(dataset):
    staff = User.objects.create_user(username="boss", email="boss@example.com", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    staff.date_joined = NOW - timedelta(days=90)
    staff.save()
    client = APIClient()
    client.force_authenticate(staff)
    day = get(client, GLOBAL, period="day").json()
    assert day == {
        "period": "day",
        "start_time": "2026-03-09T12:00:00Z",
        "end_time": "2026-03-10T12:00:00Z",
        "new_users": 1,
        "token_purchases": 3,
        "tokens_sold": 3,
        "revenue_znc": "29.00",
        "refunds_znc": "10.00",
        "total_proxy_requests": 125,
        "total_bytes_transferred": 10510,
        "proxy_sessions": 3,
    }
    week = get(client, GLOBAL, period="week").json()
    assert (week["new_users"], week["token_purchases"], week["revenue_znc"]) == (2, 4, "39.00")
    assert week["total_proxy_requests"] == 425
    month = get(client, GLOBAL, period="month").json()
    assert (month["new_users"], month["token_purchases"], month["revenue_znc"]) == (2, 4, "39.00")
    assert month["total_proxy_requests"] == 432
    assert get(client, GLOBAL, period="decade").status_code == 400


def test_queries_do_not_grow_with_rows(dataset, django_assert_max_num_queries):
    from analytics import selectors

    for i in range(30):
        session(
            dataset,
            dataset.access_tokens.first(),
            started_ago=timedelta(minutes=i),
            minutes=1,
            requests=1,
            bytes_in=1,
            bytes_out=1,
        )
    with time_machine.travel(NOW, tick=False):
        # +1 each: the open sessions whose unflushed counters are read from the store.
        with django_assert_max_num_queries(5):
            selectors.usage_for_user(user=dataset, period="month")
        with django_assert_max_num_queries(6):
            selectors.global_stats(period="month")
        with django_assert_max_num_queries(4):
            series = selectors.global_series(period="week")["series"]
    assert len(series) == 8  # 7 days plus today's partial one
    assert sum(point["proxy_requests"] for point in series) == 425 + 30
    assert sum(point["revenue"] for point in series) == Decimal("39.00")


def test_admin_dashboard_page(dataset, client):
    staff = staff_with("analytics.view_dashboard")
    client.force_login(staff)
    with time_machine.travel(NOW, tick=False):
        index = client.get("/admin/")
        assert index.status_code == 200 and b"/admin/analytics/" in index.content
        for period in ("day", "week", "month"):
            page = client.get("/admin/analytics/", {"period": period})
            assert page.status_code == 200
            html = page.content.decode()
            assert "<canvas" in html and "chart.umd.min.js" in html
        page = client.get("/admin/analytics/", {"period": "day"}).content.decode()
    assert '<td id="stat-revenue">29,00</td>' in page  # the staff member's language: Russian
    assert '<td id="stat-purchases">3</td>' in page
    assert '<td id="stat-requests">125</td>' in page


def test_admin_dashboard_needs_staff(dataset, client):
    client.force_login(dataset)
    response = client.get("/admin/analytics/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- one definition of usage per period: the dashboard page and the API ---------------------


@pytest.mark.parametrize("period,bars", [("day", 25), ("week", 8), ("month", 31)])
def test_dashboard_and_usage_api_show_the_same_usage(dataset, period, bars):
    """The dashboard's chart and `GET analytics/usage` count the same sessions over the same
    window (analytics.selectors): the bars add up to the API's totals, flushed or not yet
    flushed traffic alike, and the page shows those totals."""
    from django.test import Client

    from proxy.state import counters_key, get_state

    open_session = ProxySession.objects.get(user=dataset, ended_at__isnull=True)
    state = get_state()
    # 7 requests and 70 bytes of the open session are still only in the shared store.
    unflushed = {"n": 20 + 7, "bi": 50 + 70, "bo": 450}
    if hasattr(state.kv, "client"):  # Redis: a hash of absolute totals
        state.kv.client.hset(
            state.kv.full_key(counters_key(open_session.key)),
            mapping={k: str(v) for k, v in unflushed.items()},
        )
    else:  # the embedded default's cache-backed store
        state.kv.set(counters_key(open_session.key), {**unflushed, "ls": NOW.timestamp()}, 3600)
    api = APIClient()
    api.force_authenticate(dataset)
    usage = get(api, USAGE, period=period).json()
    User.objects.filter(pk=dataset.pk).update(language="en")
    page = Client()
    page.force_login(dataset)
    response = get(page, "/account/", period=period)
    series = response.context["usage"]
    assert len(response.context["requests_chart"].bars) == len(series.points) == bars
    assert series.total_requests == usage["total_requests"] == {"day": 127, "week": 427, "month": 434}[period]
    assert series.total_bytes == usage["total_bytes_transferred"]
    assert sum(bar.value for bar in response.context["bytes_chart"].bars) == usage["total_bytes_transferred"]
    assert (series.start.isoformat(), series.end.isoformat()) == (
        usage["start_time"].replace("Z", "+00:00"),
        usage["end_time"].replace("Z", "+00:00"),
    )
    assert f"{usage['total_requests']} requests" in response.content.decode()


def test_svg_bars_are_drawn_in_python_with_escaped_tooltips():
    from analytics.charts import bar_chart

    chart = bar_chart([0, 5, 10], ["a", "<b>&", "c"], ["x", "y", "z"], peak_label="10")
    assert [bar.height for bar in chart.bars] == [1.0, 68.0, 136.0]
    assert chart.svg_bars == (
        '<rect x="1.0" y="139.0" width="198.0" height="1.0"><title>a</title></rect>'
        '<rect x="201.0" y="72.0" width="198.0" height="68.0"><title>&lt;b&gt;&amp;</title></rect>'
        '<rect x="401.0" y="4.0" width="198.0" height="136.0"><title>c</title></rect>'
    )
