"""Template context shared by every customer page."""

from __future__ import annotations

from currency import payments


def site(request) -> dict:
    return {"SITE_NAME": "Zenzefi", "TOPUPS_AVAILABLE": payments.topups_available()}
