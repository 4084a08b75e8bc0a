"""The translation catalogs are complete: every entry of locale/ru and locale/en is translated,
none is fuzzy, Russian plurals have all three forms, and the .mo files are compiled from them."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest
from django.conf import settings

LOCALE = Path(settings.BASE_DIR) / "locale"


@pytest.mark.parametrize("language", ["ru", "en"])
def test_catalog_has_no_untranslated_or_fuzzy_entry(language):
    po = polib.pofile(str(LOCALE / language / "LC_MESSAGES" / "django.po"))
    untranslated = [e.msgid for e in po.untranslated_entries() if not e.obsolete]
    fuzzy = [e.msgid for e in po.fuzzy_entries() if not e.obsolete]
    assert not untranslated, f"untranslated in {language}: {untranslated[:20]}"
    assert not fuzzy, f"fuzzy in {language}: {fuzzy[:20]}"
    if language == "ru":
        short = [
            e.msgid for e in po if e.msgid_plural and len([v for v in e.msgstr_plural.values() if v]) < 3
        ]
        assert not short, f"Russian plurals need 3 forms: {short}"


@pytest.mark.parametrize("language", ["ru", "en"])
def test_catalog_has_no_duplicate_entries_and_is_compiled(language):
    po_path = LOCALE / language / "LC_MESSAGES" / "django.po"
    po = polib.pofile(str(po_path))
    keys = [(e.msgctxt, e.msgid) for e in po if not e.obsolete]
    assert len(keys) == len(set(keys))
    mo = polib.mofile(str(po_path.with_suffix(".mo")))
    compiled = {(e.msgctxt, e.msgid): (e.msgstr, dict(e.msgstr_plural)) for e in mo}
    stale = [
        e.msgid
        for e in po
        if not e.obsolete
        and compiled.get((e.msgctxt, e.msgid), (None, None))
        != (e.msgstr, {int(k): v for k, v in e.msgstr_plural.items()})
    ]
    assert not stale, f"run compilemessages: {stale[:10]}"
