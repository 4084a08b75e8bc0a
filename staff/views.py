"""Staff pages of the audit app: the rate-limit bans in force (SPEC §9, issue 15)."""

from datetime import UTC, datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.throttling import rate_limit_bans

BANS_PERMISSION = "audit.view_auditlog"


def bans_context() -> list[dict]:
    """The live bans (accounts.throttling.rate_limit_bans) with their user, if any, and end time."""
    bans = rate_limit_bans()
    user_ids = [int(b["key"][1:]) for b in bans if b["key"].startswith("u") and b["key"][1:].isdigit()]
    users = User.objects.in_bulk(user_ids)
    rows = []
    for ban in bans:
        key = ban["key"]
        user = users.get(int(key[1:])) if key.startswith("u") and key[1:].isdigit() else None
        rows.append(
            {
                "key": key,
                "user": user,
                "ip": key[2:] if key.startswith("ip") else "",
                "tier": ban.get("tier", ""),
                "until": datetime.fromtimestamp(float(ban["until"]), UTC),
            }
        )
    return rows


def rate_limit_bans_page(request):
    if not request.user.has_perm(BANS_PERMISSION):
        raise PermissionDenied
    context = {**admin.site.each_context(request), "title": _("Rate-limit bans"), "bans": bans_context()}
    return render(request, "admin/rate_limit_bans.html", context)
