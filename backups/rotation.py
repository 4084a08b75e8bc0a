"""Which backups to keep: 7 daily, 4 weekly, 3 monthly (grandfather-father-son).

A pure function over timestamps, so it is tested with constructed dates and never touches a file.
For each kind of period (day, ISO week, month) it walks the backups from the newest down and keeps
the newest backup of each of the N most recent periods that *have* a backup. So when backups stop
being taken, nothing more is deleted: the last good ones stay until new ones replace them.
A backup kept for several reasons is kept once; everything else may be deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime

DAILY, WEEKLY, MONTHLY = 7, 4, 3


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _week(moment: datetime) -> Hashable:
    iso = moment.isocalendar()
    return (iso.year, iso.week)


def _month(moment: datetime) -> Hashable:
    return (moment.year, moment.month)


def _newest_per_period(ordered: list[datetime], period: Callable[[datetime], Hashable], count: int) -> set:
    kept: set[datetime] = set()
    seen: set[Hashable] = set()
    for moment in ordered:
        if len(seen) >= count:
            break
        bucket = period(moment)
        if bucket not in seen:
            seen.add(bucket)
            kept.add(moment)
    return kept


def backups_to_keep(
    moments: Iterable[datetime], *, daily: int = DAILY, weekly: int = WEEKLY, monthly: int = MONTHLY
) -> set[datetime]:
    """The subset of `moments` (backup times, all in one time zone: UTC) that rotation keeps."""
    if min(daily, weekly, monthly) < 0:
        raise ValueError("keep counts must not be negative")
    ordered = sorted(set(moments), reverse=True)
    return (
        _newest_per_period(ordered, _day, daily)
        | _newest_per_period(ordered, _week, weekly)
        | _newest_per_period(ordered, _month, monthly)
    )
