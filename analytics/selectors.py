"""Usage and business figures, computed with aggregate queries only (no per-row Python)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from currency.models import Transaction, TransactionType
from currency.selectors import sales
from proxy.models import ProxySession
from proxy.state import get_state
from tokens.models import AccessToken
from zenzefi.errors import InvalidInput

PERIODS: dict[str, timedelta] = {
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
}


def period_window(period: str | None, *, now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """(period, start_time, end_time); `day` when not given; 400 for anything else."""
    period = period or "day"
    if period not in PERIODS:
        raise InvalidInput(f"period: must be one of {', '.join(PERIODS)}.", code="invalid_period")
    now = now or timezone.now()
    return period, now - PERIODS[period], now


def _session_duration():
    # An open session lasts, so far, until its last request.
    return ExpressionWrapper(
        Coalesce("ended_at", "last_seen") - F("started_at"), output_field=DurationField()
    )


def _minutes(value: timedelta | None) -> float:
    return round(value.total_seconds() / 60, 2) if value else 0.0


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def proxy_traffic(
    *, start: datetime, end: datetime, user=None, trunc=None
) -> dict[datetime | None, dict[str, int]]:
    """THE count of proxy traffic, shared by the API's `global-stats`/`usage` and the admin
    dashboard: sessions started in [start, end] with all their requests and bytes, per bucket
    of the session's start (`trunc` = TruncHour/TruncDay in UTC; one bucket `None` without).

    A session's counters live in the shared key-value store on the hot path and reach its row
    when the flush job runs (every 30 s); for sessions still open the not-yet-flushed part is
    read from the store, so traffic shows as it happens even where the flush lags."""
    sessions = ProxySession.objects.filter(started_at__gte=start, started_at__lte=end)
    if user is not None:
        sessions = sessions.filter(user=user)
    figures = {
        "requests": Coalesce(Sum("request_count"), 0),
        "bytes": Coalesce(Sum(F("bytes_in") + F("bytes_out")), 0),
        "sessions": Count("pk"),
    }
    if trunc is None:
        rows = [{"bucket": None, **sessions.aggregate(**figures)}]
        bucket_of = None
    else:
        rows = (
            sessions.annotate(bucket=trunc("started_at", tzinfo=UTC))
            .values("bucket")
            .annotate(**figures)
            .order_by("bucket")
        )
        bucket_of = _hour if trunc is TruncHour else _day
    result = {row["bucket"]: {name: int(row[name]) for name in figures} for row in rows}
    state = get_state()
    open_sessions = sessions.filter(ended_at__isnull=True).values_list(
        "key", "started_at", "request_count", "bytes_in", "bytes_out"
    )
    # The open sessions' live counters: one kv call per chunk, not one per session.
    for chunk in _chunks(open_sessions, LIVE_CHUNK):
        for (_key, started_at, requests, bytes_in, bytes_out), live in zip(
            chunk, state.counters_many([row[0] for row in chunk]), strict=True
        ):
            if not live:
                continue
            bucket = result.setdefault(
                bucket_of(started_at) if bucket_of else None, {"requests": 0, "bytes": 0, "sessions": 0}
            )
            bucket["requests"] += max(0, int(live.get("n", 0)) - requests)
            bucket["bytes"] += max(0, int(live.get("bi", 0)) - bytes_in) + max(
                0, int(live.get("bo", 0)) - bytes_out
            )
    return result


@dataclass(frozen=True)
class UsagePoint:
    start: datetime
    requests: int
    bytes: int


@dataclass(frozen=True)
class UsageSeries:
    period: str
    start: datetime
    end: datetime
    step: timedelta
    points: list[UsagePoint]

    @property
    def total_requests(self) -> int:
        return sum(p.requests for p in self.points)

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.points)


# Usage per period, ONE definition for the customer's dashboard (`usage_series`) and
# `GET analytics/usage` (`usage_for_user`): the period's window is `period_window` (the last 24
# hours, 7 or 30 days up to now), its traffic is `proxy_traffic` (sessions started in the window,
# with all their requests and bytes, flushed or still in the shared store). The dashboard's bars
# split the same window by clock hour (day) or date (week, month) in UTC, as the staff dashboard's
# do: the first and the last bar cover part of their hour or day, and the bars add up to the API's
# totals.


def usage_series(*, user, period: str | None, now: datetime | None = None) -> UsageSeries:
    """A customer's proxy requests and bytes over the period, per hour (day) or per day (week,
    month); buckets without traffic are zeros. Totals = `usage_for_user`'s for the same `now`."""
    period, start, end = period_window(period, now=now)
    trunc, slots = _buckets(period, start, end)
    traffic = proxy_traffic(start=start, end=end, user=user, trunc=trunc)
    points = [
        UsagePoint(
            start=slot,
            requests=int(traffic.get(slot, {}).get("requests", 0)),
            bytes=int(traffic.get(slot, {}).get("bytes", 0)),
        )
        for slot in slots
    ]
    return UsageSeries(period=period, start=start, end=end, step=slots[1] - slots[0], points=points)


LIVE_CHUNK = 1000


def _chunks(rows, size: int):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def traffic_total(traffic: dict) -> dict[str, int]:
    """The sum of `proxy_traffic`'s buckets (the whole window)."""
    total = {"requests": 0, "bytes": 0, "sessions": 0}
    for figures in traffic.values():
        for name in total:
            total[name] += figures.get(name, 0)
    return total


def usage_for_user(*, user, period: str | None, now: datetime | None = None) -> dict[str, Any]:
    """A customer's proxy use over the period (the definition above); `active_sessions` and
    `active_tokens` are as of now."""
    period, start, end = period_window(period, now=now)
    sessions = ProxySession.objects.filter(user=user, started_at__gte=start, started_at__lte=end).aggregate(
        avg_duration=Avg(_session_duration()),
    )
    traffic = proxy_traffic(start=start, end=end, user=user).get(None, {})
    return {
        "period": period,
        "start_time": start,
        "end_time": end,
        "total_requests": traffic.get("requests", 0),
        "total_bytes_transferred": traffic.get("bytes", 0),
        "active_sessions": ProxySession.objects.filter(user=user, ended_at__isnull=True).count(),
        "active_tokens": AccessToken.objects.filter(user=user).active(end).count(),
        "avg_session_duration_minutes": _minutes(sessions["avg_duration"]),
    }


def global_stats(
    *, period: str | None, now: datetime | None = None, traffic: dict | None = None
) -> dict[str, Any]:
    """Platform figures over the period (staff). `revenue_znc` and `token_purchases` are
    `currency.selectors.sales` (tokens, bundles, renewals and gift codes; a bundle or a gift code
    is one purchase), before refunds (`refunds_znc`); `tokens_sold` the tokens created.
    `traffic`: the window's `proxy_traffic` already grouped (the dashboard reads sessions once for
    its table and its chart)."""
    period, start, end = period_window(period, now=now)
    window = Q(created_at__gte=start, created_at__lte=end)
    sold = sales(start=start, end=end)[None]
    refunds = Transaction.objects.filter(window, type=TransactionType.REFUND).aggregate(
        refunds=Coalesce(Sum("amount"), Decimal("0"))
    )["refunds"]
    traffic = traffic_total(traffic if traffic is not None else proxy_traffic(start=start, end=end))
    return {
        "period": period,
        "start_time": start,
        "end_time": end,
        "new_users": get_user_model().objects.filter(date_joined__gte=start, date_joined__lte=end).count(),
        "token_purchases": sold["purchases"],
        "tokens_sold": AccessToken.objects.filter(window).count(),
        "revenue_znc": f"{sold['revenue']:.2f}",
        "refunds_znc": f"{refunds:.2f}",
        "total_proxy_requests": int(traffic["requests"]),
        "total_bytes_transferred": int(traffic["bytes"]),
        "proxy_sessions": traffic["sessions"],
    }


def _buckets(period: str, start: datetime, end: datetime) -> tuple[Any, list[datetime]]:
    if period == "day":
        trunc, step = TruncHour, timedelta(hours=1)
        first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    else:
        trunc, step = TruncDay, timedelta(days=1)
        first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    slots, slot = [], first
    while slot <= end:
        slots.append(slot)
        slot += step
    return trunc, slots


def series_traffic(*, period: str | None, now: datetime) -> dict:
    """`proxy_traffic` of the period in the series' buckets (for `global_series` and, summed,
    `global_stats`)."""
    period, start, end = period_window(period, now=now)
    trunc, _slots = _buckets(period, start, end)
    return proxy_traffic(start=start, end=end, trunc=trunc)


def global_series(
    *, period: str | None, now: datetime | None = None, traffic: dict | None = None
) -> dict[str, Any]:
    """The dashboard's bars: revenue, purchases, proxy requests and new users per hour (day) or
    per day (week, month), grouped in the database. `traffic`: `series_traffic` of the same
    period and moment, if already read."""
    period, start, end = period_window(period, now=now)
    trunc, slots = _buckets(period, start, end)

    def grouped(qs, field: str, **aggregates) -> dict[datetime, dict]:
        rows = (
            qs.annotate(bucket=trunc(field, tzinfo=UTC))
            .values("bucket")
            .annotate(**aggregates)
            .order_by("bucket")
        )
        return {row["bucket"]: row for row in rows}

    money = sales(start=start, end=end, trunc=trunc)
    if traffic is None:
        traffic = proxy_traffic(start=start, end=end, trunc=trunc)
    users = grouped(
        get_user_model().objects.filter(date_joined__gte=start, date_joined__lte=end),
        "date_joined",
        n=Count("pk"),
    )
    series = []
    for slot in slots:
        series.append(
            {
                "bucket": slot,
                "revenue": money.get(slot, {}).get("revenue", Decimal("0.00")),
                "purchases": money.get(slot, {}).get("purchases", 0),
                "proxy_requests": int(traffic.get(slot, {}).get("requests") or 0),
                "new_users": users.get(slot, {}).get("n", 0),
            }
        )
    return {"period": period, "start_time": start, "end_time": end, "series": series}
