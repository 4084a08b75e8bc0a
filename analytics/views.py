"""The staff dashboard in the admin: revenue, purchases, proxy traffic and sign-ups for the last
day, week or month, as server-rendered SVG bars (no JavaScript)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from analytics import selectors
from analytics.models import DASHBOARD_PERMISSION

CHART_HEIGHT = 120


def _chart(series: list[dict], key: str, label: str, period: str) -> dict:
    values = [float(point[key]) for point in series]
    peak = max(values) if values and max(values) > 0 else 1.0
    count = max(1, len(values))
    width = 720
    slot = width / count
    bars = []
    for index, (point, value) in enumerate(zip(series, values, strict=True)):
        height = value / peak * CHART_HEIGHT
        when = point["bucket"].strftime("%Y-%m-%d %H:00" if period == "day" else "%Y-%m-%d")
        bars.append(
            {
                # Strings: template numbers would be localised ("12,5" in Russian) and break SVG.
                "x": f"{index * slot + 1:.1f}",
                "y": f"{CHART_HEIGHT - height:.1f}",
                "width": f"{max(1.0, slot - 2):.1f}",
                "height": f"{height:.1f}",
                "title": f"{when}: {point[key]}",
            }
        )
    return {
        "label": label,
        "bars": bars,
        "peak": point_format(peak),
        "total": point_format(sum(values)),
        "width": width,
        "height": CHART_HEIGHT,
    }


def point_format(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value)}"


def dashboard(request):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    period = request.GET.get("period") or "day"
    if period not in selectors.PERIODS:
        period = "day"
    stats = selectors.global_stats(period=period)
    series = selectors.global_series(period=period)["series"]
    charts = [
        _chart(series, "revenue", "Revenue, ZNC", period),
        _chart(series, "purchases", "Purchases", period),
        _chart(series, "proxy_requests", "Proxy requests", period),
        _chart(series, "new_users", "New users", period),
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "period": period,
        "periods": list(selectors.PERIODS),
        "stats": stats,
        "charts": charts,
    }
    return TemplateResponse(request, "admin/analytics_dashboard.html", context)
