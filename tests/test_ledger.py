from decimal import Decimal

import pytest

from accounts.models import User
from audit.models import AuditLog
from currency.models import AppendOnlyError, Transaction, TransactionType
from currency.selectors import ledger_sum
from currency.services import balance_change
from tests.concurrency import run_threads
from tests.factories import UserFactory, fund
from zenzefi.errors import InsufficientFunds, InvalidInput

pytestmark = pytest.mark.django_db


def assert_ledger_consistent(user: User) -> None:
    user.refresh_from_db()
    assert user.balance == ledger_sum(user=user)
    running = Decimal("0")
    for row in Transaction.objects.filter(user=user).order_by("id"):
        running += row.amount
        assert row.balance_after == running
        assert row.balance_after >= 0


def test_mixed_credits_and_debits_keep_balance_equal_to_ledger(user):
    moves = [
        ("100.00", TransactionType.DEPOSIT),
        ("-18.00", TransactionType.PURCHASE),
        ("9.00", TransactionType.REFUND),
        ("-0.01", TransactionType.PURCHASE),
        ("5.55", TransactionType.ADJUSTMENT),
        ("-96.54", TransactionType.PURCHASE),
    ]
    for amount, kind in moves:
        balance_change(user=user, amount=Decimal(amount), transaction_type=kind)
    assert_ledger_consistent(user)
    assert user.balance == Decimal("0.00")
    assert Transaction.objects.filter(user=user).count() == len(moves)
    assert AuditLog.objects.filter(action="balance.change", actor=user).count() == len(moves)


def test_debit_larger_than_balance_changes_nothing(user):
    fund(user, "10.00")
    rows_before = Transaction.objects.count()
    audits_before = AuditLog.objects.count()
    with pytest.raises(InsufficientFunds) as exc:
        balance_change(user=user, amount=Decimal("-10.01"), transaction_type=TransactionType.PURCHASE)
    assert exc.value.status_code == 402
    user.refresh_from_db()
    assert user.balance == Decimal("10.00")
    assert Transaction.objects.count() == rows_before
    assert AuditLog.objects.count() == audits_before


def test_amounts_round_half_up_and_reject_float_and_zero(user):
    row = balance_change(user=user, amount=Decimal("1.005"), transaction_type=TransactionType.DEPOSIT)
    assert row.amount == Decimal("1.01")
    with pytest.raises(TypeError):
        balance_change(user=user, amount=1.5, transaction_type=TransactionType.DEPOSIT)
    with pytest.raises(InvalidInput):
        balance_change(user=user, amount=Decimal("0.001"), transaction_type=TransactionType.DEPOSIT)
    with pytest.raises(InvalidInput):
        balance_change(user=user, amount=Decimal("1"), transaction_type="BOGUS")
    assert Transaction.objects.filter(user=user).count() == 1


def test_transactions_are_append_only(user):
    fund(user, "5")
    row = Transaction.objects.get(user=user)
    row.amount = Decimal("500")
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        Transaction.objects.filter(user=user).update(amount=Decimal("1"))
    with pytest.raises(AppendOnlyError):
        Transaction.objects.filter(user=user).delete()
    assert Transaction.objects.get(user=user).amount == Decimal("5.00")


def test_database_refuses_negative_balance(user):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(balance=Decimal("-1"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_never_overdraw(requires_postgres):
    user = UserFactory()
    fund(user, "100.00")  # covers exactly 10 debits of 10

    def debit():
        balance_change(user=user, amount=Decimal("-10.00"), transaction_type=TransactionType.PURCHASE)
        return "ok"

    results = run_threads(20, debit)
    assert results.count("ok") == 10, results
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 10, results
    assert_ledger_consistent(user)
    assert user.balance == Decimal("0.00")


def test_a_stale_full_save_never_writes_the_balance_back(user):
    """Profile/password/admin forms save the whole row from an instance loaded earlier; the money
    columns must keep what the ledger wrote meanwhile."""
    stale = User.objects.get(pk=user.pk)  # loaded before the deposit, balance 0
    fund(user, "100")
    stale.full_name = "Changed Elsewhere"
    stale.set_password("An0ther-Strong-Pass")
    stale.save()
    assert_ledger_consistent(user)
    user.refresh_from_db()
    assert user.balance == Decimal("100.00") and user.full_name == "Changed Elsewhere"
