"""Fill empty English msgstr entries of locale/en/LC_MESSAGES/django.po with their msgid (the
English source text), in place, without reordering anything; then run compilemessages.

    .venv/bin/python scripts/catalog_fill_en.py

tests/test_catalogs.py fails on an untranslated entry in either catalog; this fixes the English
one after entries were appended with `msgstr ""`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PO = Path(__file__).resolve().parent.parent / "locale" / "en" / "LC_MESSAGES" / "django.po"


def fill(text: str) -> tuple[str, int]:
    count = 0

    def single(match: re.Match) -> str:
        nonlocal count
        count += 1
        return f"{match['id']}msgstr {match['body']}\n"

    # msgid "..." (possibly multi-line) followed by msgstr "" and a blank line or the end.
    text = re.sub(
        r'(?P<id>^msgid (?P<body>"(?:[^"\\]|\\.)*"(?:\n"(?:[^"\\]|\\.)*")*)\n)msgstr ""\n(?=\n|\Z)',
        lambda m: single(m) if m["body"] != '""' else m.group(0),
        text,
        flags=re.M,
    )

    def plural(match: re.Match) -> str:
        nonlocal count
        count += 1
        return f"{match['head']}msgstr[0] {match['one']}\nmsgstr[1] {match['many']}\n"

    text = re.sub(
        r'(?P<head>^msgid (?P<one>"(?:[^"\\]|\\.)*")\nmsgid_plural (?P<many>"(?:[^"\\]|\\.)*")\n)'
        r'msgstr\[0\] ""\nmsgstr\[1\] ""\n',
        plural,
        text,
        flags=re.M,
    )
    return text, count


if __name__ == "__main__":
    new, filled = fill(PO.read_text())
    PO.write_text(new)
    print(f"{filled} English entries filled", file=sys.stderr)
