"""Shared DRF permission classes.

Anonymous callers get 401 (DRF asks the authenticator for a challenge), signed-in callers
without the right get 403; both in the `{"detail", "code"}` shape of `zenzefi.errors`.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Staff only (`is_staff`): the admin REST API."""

    message = "Staff only."
    code = "permission_denied"

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
