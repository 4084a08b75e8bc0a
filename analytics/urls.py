from django.urls import path

from analytics import api

urlpatterns = [
    path("analytics/usage", api.UsageView.as_view(), name="analytics-usage"),
    path("analytics/admin/global-stats", api.GlobalStatsView.as_view(), name="analytics-global-stats"),
]
