import pytest

from app.models.ledger import LedgerAccount, LedgerError, check_balanced

A, B, C = (LedgerAccount(code=c, name=c, kind="asset") for c in "abc")


def test_balanced_entries_pass():
    check_balanced([(A, 1000, "BRL"), (B, -900, "BRL"), (C, -100, "BRL")])
    check_balanced([(A, 5, "BRL"), (B, -5, "BRL"), (A, 7, "USD"), (C, -7, "USD")])


@pytest.mark.parametrize(
    "lines",
    [
        [(A, 1000, "BRL"), (B, -999, "BRL")],  # off by a cent
        [(A, 5, "BRL"), (B, -5, "USD")],  # balanced in total, not per currency
        [(A, 0, "BRL"), (B, 0, "BRL")],  # empty entries
        [(A, 10, "BRL")],  # one leg
        [(A, 1.5, "BRL"), (B, -1.5, "BRL")],  # never floats
    ],
)
def test_unbalanced_or_degenerate_postings_are_refused(lines):
    with pytest.raises(LedgerError):
        check_balanced(lines)
