"""Ledger descriptions in the reader's language, rendered at display time.

A `Transaction` keeps the English `description` written when it was made (the ledger is
append-only and that text stays as it was). Pages, the admin, emails and the REST API show instead
a text rendered now, in the active language, from the row's `type` and `reference`
(`token:12`, `bundle:3:<purchase>`, `payment:7`, `referral:5`, `gift:9`, `mock:<id>`, …).

The ledger is a leaf: it knows no token, bundle or payment. Each app that writes a kind of
reference registers, in its `AppConfig.ready()`, a batch renderer for it (`register("token",
render)`); a renderer receives every listed row of its kind at once (one query per kind, never
per row) and returns `{transaction id: text}` for the rows it recognises. Rows nobody
recognises fall back to the stored description.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.utils.translation import gettext as _

from currency.models import Transaction, TransactionType

Renderer = Callable[[list[Transaction]], dict[int, str]]

# kind → [(priority, renderer)], higher priority wins where two renderers recognise one row.
_RENDERERS: dict[str, list[tuple[int, Renderer]]] = defaultdict(list)


def register(kind: str, renderer: Renderer, *, priority: int = 0) -> None:
    """Render rows whose reference starts with `<kind>:` (or is exactly `kind`)."""
    entries = _RENDERERS[kind]
    if all(existing is not renderer for _p, existing in entries):
        entries.append((priority, renderer))
        entries.sort(key=lambda item: item[0])


def reference_kind(reference: str) -> str:
    return reference.split(":", 1)[0]


def reference_parts(reference: str) -> list[str]:
    return reference.split(":")[1:]


def reference_ids(rows: Iterable[Transaction], position: int = 0) -> dict[int, int]:
    """{transaction id: the integer at `position` after the kind}; malformed references left out."""
    ids = {}
    for row in rows:
        parts = reference_parts(row.reference)
        if len(parts) > position and parts[position].isdigit():
            ids[row.pk] = int(parts[position])
    return ids


def describe(transactions: Iterable[Transaction]) -> dict[int, str]:
    """Render the rows' descriptions in the active language; each row also gets the text as
    `display_description`. Batched: one query per kind of reference on the page."""
    rows = [row for row in transactions if row is not None]
    by_kind: dict[str, list[Transaction]] = defaultdict(list)
    for row in rows:
        by_kind[reference_kind(row.reference or "")].append(row)
    texts: dict[int, str] = {}
    for kind, kind_rows in by_kind.items():
        for _priority, renderer in _RENDERERS.get(kind, []):
            texts.update(renderer(kind_rows))
    for row in rows:
        text = texts.get(row.pk)
        if text is None:
            text = _fallback(row)
        row.display_description = text
        texts[row.pk] = text
    return texts


def description_of(row: Transaction) -> str:
    """One row's description (uses the batch result when `describe` already ran)."""
    if not hasattr(row, "display_description"):
        describe([row])
    return row.display_description


def _fallback(row: Transaction) -> str:
    if row.type == TransactionType.ADJUSTMENT:
        # The staff member's reason, as written.
        return (
            _("Balance adjustment: %(reason)s") % {"reason": row.description}
            if row.description
            else _("Balance adjustment")
        )
    return row.description


def _mock(rows: list[Transaction]) -> dict[int, str]:
    return {row.pk: _("Mock top-up") for row in rows if row.type == TransactionType.DEPOSIT}


def _bootstrap(rows: list[Transaction]) -> dict[int, str]:
    return {row.pk: _("Demo balance") for row in rows}


register("mock", _mock)
register("bootstrap", _bootstrap)
