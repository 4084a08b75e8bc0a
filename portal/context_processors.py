"""Template context shared by every customer page."""

from __future__ import annotations

from payments import checkout


def site(request) -> dict:
    return {"SITE_NAME": "Zenzefi", "TOPUPS_AVAILABLE": checkout.topups_available()}
