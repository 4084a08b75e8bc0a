from decimal import Decimal

import pytest

from accounts.models import User
from audit.models import AuditLog
from currency.models import AppendOnlyError, Transaction, TransactionType
from currency.selectors import ledger_sum
from currency.services import BalanceChange, balance_change, balance_change_many
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


def _metric(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_a_batch_keeps_each_users_balance_equal_to_the_ledger_with_running_balances(
    django_capture_on_commit_callbacks,
):
    """`balance_change_many`: the rules of `balance_change` for each change, in the order given;
    two changes for one user in a batch each get the running `balance_after`; the audit entries
    and the metrics (revenue for the revenue types) as one change at a time would write them."""
    alice, bob = UserFactory(), UserFactory()
    fund(alice, "50.00")
    purchases = _metric("znc_balance_changes_total", operation="purchase")
    revenue = _metric("znc_revenue_total")
    changes = [
        BalanceChange(user=bob, amount=Decimal("30.00"), transaction_type=TransactionType.DEPOSIT),
        BalanceChange(user=alice, amount=Decimal("-18.00"), transaction_type=TransactionType.PURCHASE),
        BalanceChange(user=bob, amount=Decimal("-12.50"), transaction_type=TransactionType.PURCHASE),
        BalanceChange(
            user=alice,
            amount=Decimal("-32.00"),
            transaction_type=TransactionType.PURCHASE,
            reference="token:1",
            audit_details={"auto_renewal": True},
        ),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        rows = balance_change_many(changes)
    assert [(r.user_id, r.amount, r.balance_after) for r in rows] == [
        (bob.pk, Decimal("30.00"), Decimal("30.00")),
        (alice.pk, Decimal("-18.00"), Decimal("32.00")),
        (bob.pk, Decimal("-12.50"), Decimal("17.50")),
        (alice.pk, Decimal("-32.00"), Decimal("0.00")),
    ]
    assert all(r.pk for r in rows)
    for user in (alice, bob):
        assert_ledger_consistent(user)
    assert (alice.balance, bob.balance) == (Decimal("0.00"), Decimal("17.50"))
    entries = AuditLog.objects.filter(
        action="balance.change", details__transaction_id__in=[r.pk for r in rows]
    )
    by_tx = {e.details["transaction_id"]: e for e in entries}
    assert by_tx[rows[3].pk].actor_id == alice.pk
    assert by_tx[rows[3].pk].details["balance_after"] == "0.00"
    assert by_tx[rows[3].pk].details["auto_renewal"] is True
    assert by_tx[rows[3].pk].details["reference"] == "token:1"
    assert by_tx[rows[2].pk].resource_id == str(bob.pk)
    assert _metric("znc_balance_changes_total", operation="purchase") == purchases + 3
    assert _metric("znc_revenue_total") == pytest.approx(revenue + 62.5)


def test_a_batch_with_one_overdraft_refuses_and_writes_nothing():
    """All or nothing: one change beyond its user's running balance refuses the whole batch
    (402), the other users' changes included; the renewal job decides insufficiency before."""
    alice, bob = UserFactory(), UserFactory()
    fund(alice, "20.00")
    fund(bob, "20.00")
    rows_before, audits_before = Transaction.objects.count(), AuditLog.objects.count()
    with pytest.raises(InsufficientFunds) as exc:
        balance_change_many(
            [
                BalanceChange(user=bob, amount=Decimal("-5.00"), transaction_type=TransactionType.PURCHASE),
                BalanceChange(
                    user=alice, amount=Decimal("-15.00"), transaction_type=TransactionType.PURCHASE
                ),
                BalanceChange(user=alice, amount=Decimal("-5.01"), transaction_type=TransactionType.PURCHASE),
            ]
        )
    assert exc.value.status_code == 402
    assert exc.value.extra == {"balance": "5.00", "required": "5.01"}
    for user in (alice, bob):
        user.refresh_from_db()
        assert user.balance == Decimal("20.00")
    assert Transaction.objects.count() == rows_before
    assert AuditLog.objects.count() == audits_before


def test_a_batch_validates_every_change_before_writing():
    user = UserFactory()
    fund(user, "10.00")
    rows_before = Transaction.objects.count()
    for bad in (
        BalanceChange(user=user, amount=Decimal("0.001"), transaction_type=TransactionType.DEPOSIT),
        BalanceChange(user=user, amount=Decimal("1.00"), transaction_type="NOPE"),
    ):
        with pytest.raises(InvalidInput):
            balance_change_many(
                [
                    BalanceChange(
                        user=user, amount=Decimal("1.00"), transaction_type=TransactionType.DEPOSIT
                    ),
                    bad,
                ]
            )
    assert Transaction.objects.count() == rows_before
    assert balance_change_many([]) == []


def test_a_batch_costs_the_same_queries_for_2_and_40_changes():
    """Lock, update, the ledger rows and their audit entries: one statement each per batch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for n in (2, 40):
        users = [UserFactory() for _ in range(n // 2)]
        changes = [
            BalanceChange(user=u, amount=Decimal(amount), transaction_type=TransactionType.DEPOSIT)
            for u in users
            for amount in ("1.00", "2.00")
        ]
        with CaptureQueriesContext(connection) as ctx:
            balance_change_many(changes)
        counts[n] = len(
            [q for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
        )
        for user in users:
            assert_ledger_consistent(user)
            assert user.balance == Decimal("3.00")
    if connection.vendor == "postgresql":  # SQLite splits a bulk insert by its parameter limit
        assert counts[2] == counts[40] == 4
