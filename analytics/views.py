"""The staff dashboard in the admin: revenue, purchases, proxy traffic and sign-ups for the last
day, week or month: a table of totals (the same figures as the API's `global-stats`) and one bar
chart per figure, drawn by the vendored Chart.js (static/vendor/chartjs/) with a time axis in UTC.
Without JavaScript each chart's values are still there as a table."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from analytics import selectors
from analytics.models import DASHBOARD_PERMISSION

PERIOD_LABELS = {
    "day": gettext_lazy("Last 24 hours"),
    "week": gettext_lazy("Last 7 days"),
    "month": gettext_lazy("Last 30 days"),
}


def _number(value) -> float | int:
    return float(value) if isinstance(value, Decimal) else int(value)


def dashboard_context(period: str) -> dict:
    """The dashboard's figures: `stats` (= global-stats) and `charts` whose totals add up to them."""
    now = timezone.now()  # one window for the table and the charts
    # Proxy sessions are read once (grouped by the chart's buckets); the table's totals are their sum.
    traffic = selectors.series_traffic(period=period, now=now)
    stats = selectors.global_stats(period=period, now=now, traffic=traffic)
    series = selectors.global_series(period=period, now=now, traffic=traffic)["series"]
    hourly = period == "day"
    labels = [point["bucket"].strftime("%Y-%m-%d %H:%M" if hourly else "%Y-%m-%d") for point in series]
    charts = []
    for key, label, unit, total in (
        ("revenue", _("Revenue"), "ZNC", Decimal(stats["revenue_znc"])),
        ("purchases", _("Purchases"), pgettext("unit", "pcs"), stats["token_purchases"]),
        ("proxy_requests", _("Proxy requests"), pgettext("unit", "pcs"), stats["total_proxy_requests"]),
        ("new_users", _("New users"), pgettext("unit", "pcs"), stats["new_users"]),
    ):
        values = [point[key] for point in series]
        charts.append(
            {
                "key": key,
                "label": label,
                "unit": unit,
                "total": sum(values, Decimal("0") if key == "revenue" else 0),
                "stats_total": total,
                "peak": max(values) if values else 0,
                "rows": list(zip(labels, values, strict=True)),
                "data": {
                    "key": key,
                    "label": f"{label}, {unit}",
                    "unit": unit,
                    "labels": labels,
                    "values": [_number(v) for v in values],
                    "x_title": _("Hour starting, UTC") if hourly else _("Date, UTC"),
                    "y_title": f"{label}, {unit}",
                },
            }
        )
    return {"stats": stats, "charts": charts, "hourly": hourly}


def dashboard(request):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    period = request.GET.get("period") or "day"
    if period not in selectors.PERIODS:
        period = "day"
    context = {
        **admin.site.each_context(request),
        **dashboard_context(period),
        "title": _("Dashboard"),
        "period": period,
        "periods": list(PERIOD_LABELS.items()),
        "period_label": PERIOD_LABELS[period],
    }
    return TemplateResponse(request, "admin/analytics_dashboard.html", context)
