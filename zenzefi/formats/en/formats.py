"""English date formats of the pages: one form everywhere, "1 Dec 2026, 13:31 UTC" (24-hour clock,
the zone named), instead of Django's mix of "12/01/2026 1:31 p.m." and "Dec. 1, 2026"."""

DATE_FORMAT = "j M Y"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
FIRST_DAY_OF_WEEK = 1  # Monday
