from django.urls import path

from staff import admin_api

urlpatterns = [
    path("users", admin_api.AdminUserListView.as_view(), name="admin-users"),
    path("users/<int:user_id>", admin_api.AdminUserDetailView.as_view(), name="admin-users-detail"),
]
