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


class StaffPermission(BasePermission):
    """Staff with the Django permission(s) the view names for this request (SPEC §13).

    The view declares `staff_permissions = {"GET": ("app.codename",), ...}` (every listed
    permission is required) or overrides `required_permissions(request)`. The codenames are the
    ones the Django admin checks for the same act, so a role behaves the same on both paths.
    Superusers have every permission (`has_perm`); inactive users none. Without it: 403
    `permission_denied`, before the view runs (nothing is written).
    """

    message = "You do not have permission to perform this action."
    code = "permission_denied"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        needed = required_permissions(view, request)
        if needed is None:  # a method the view did not map: refused, never "staff is enough"
            return False
        missing = [perm for perm in needed if not user.has_perm(perm)]
        if missing:
            self.message = f"You do not have permission to perform this action (needs {missing[0]})."
            return False
        return True


def required_permissions(view, request) -> tuple[str, ...] | None:
    if hasattr(view, "required_permissions"):
        return tuple(view.required_permissions(request))
    mapping = getattr(view, "staff_permissions", {})
    method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
    perms = mapping.get(method)
    return None if perms is None else tuple(perms)
