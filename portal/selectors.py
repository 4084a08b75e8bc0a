"""Reads for the customer pages: the proxy usage series of the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.db.models import F, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from accounts.models import User

# period → (bucket size, bucket count)
USAGE_PERIODS: dict[str, tuple[timedelta, int]] = {
    "day": (timedelta(hours=1), 24),
    "week": (timedelta(days=1), 7),
    "month": (timedelta(days=1), 30),
}


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


def usage_series(*, user: User, period: str, now: datetime | None = None) -> UsageSeries:
    """Requests and bytes (in + out) through the proxy per hour (day) or per day (week, month),
    from the user's `ProxySession` rows (one grouped query; a session counts in the bucket it
    started in). Buckets with no traffic are zeros, so the series always has its full length."""
    step, count = USAGE_PERIODS[period]
    now = timezone.localtime(now or timezone.now())
    if step == timedelta(hours=1):
        end = now.replace(minute=0, second=0, microsecond=0) + step
        trunc = TruncHour
    else:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + step
        trunc = TruncDay
    start = end - step * count
    totals: dict[datetime, tuple[int, int]] = {}
    if apps.is_installed("proxy"):
        from proxy.models import ProxySession

        rows = (
            ProxySession.objects.filter(user=user, started_at__gte=start, started_at__lt=end)
            .annotate(bucket=trunc("started_at", tzinfo=timezone.get_current_timezone()))
            .values("bucket")
            .annotate(requests=Sum("request_count"), bytes=Sum(F("bytes_in") + F("bytes_out")))
            .order_by("bucket")
        )
        totals = {row["bucket"]: (row["requests"] or 0, row["bytes"] or 0) for row in rows}
    points = []
    for i in range(count):
        bucket = start + step * i
        requests, size = totals.get(bucket, (0, 0))
        points.append(UsagePoint(start=bucket, requests=int(requests), bytes=int(size)))
    return UsageSeries(period=period, start=start, end=end, step=step, points=points)
