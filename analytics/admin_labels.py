"""The admin's presentation in the staff member's language: Zenzefi branding, and
django-celery-beat's interval names with real plural forms.

django-celery-beat 2.9 builds "every {} {}" from the capitalised period name ("Minutes"), which
reads "каждые 5 минуты" / "каждые 12 часы" in Russian; its `IntervalSchedule.__str__` is replaced
here by one `ngettext` per period ("каждые 5 минут", "каждые 12 часов", "каждую минуту")."""

from __future__ import annotations

from django.utils.translation import gettext, ngettext

SINGLE = {
    "days": lambda: gettext("every day"),
    "hours": lambda: gettext("every hour"),
    "minutes": lambda: gettext("every minute"),
    "seconds": lambda: gettext("every second"),
    "microseconds": lambda: gettext("every microsecond"),
}
MANY = {
    "days": lambda n: ngettext("every %(count)d day", "every %(count)d days", n),
    "hours": lambda n: ngettext("every %(count)d hour", "every %(count)d hours", n),
    "minutes": lambda n: ngettext("every %(count)d minute", "every %(count)d minutes", n),
    "seconds": lambda n: ngettext("every %(count)d second", "every %(count)d seconds", n),
    "microseconds": lambda n: ngettext("every %(count)d microsecond", "every %(count)d microseconds", n),
}


def interval_label(every: int, period: str) -> str:
    if period not in MANY:
        return f"{every} {period}"
    if every == 1:
        return SINGLE[period]()
    return MANY[period](every) % {"count": every}


def install() -> None:
    from django.contrib import admin
    from django_celery_beat.models import IntervalSchedule

    admin.site.site_header = "Zenzefi"
    admin.site.site_title = "Zenzefi"
    admin.site.index_title = "Zenzefi"
    IntervalSchedule.__str__ = lambda self: interval_label(self.every, self.period)
