"""The purchase path (ARCHITECTURE.md, "The purchase path"), one module per step:

- hold.py: step 1, a customer's short claim on spots; cart.py: the customer's live hold for an
  event as their cart (later holds add to it, one order and one payment); summary.py: what a
  hold holds, as the purchase path answers it (HoldSummary), and a customer's live carts.
- release.py: spots back on sale: a hold released, a spot taken out of a cart, expired holds.
- checkout.py: the attempt: record it under the client's idempotency key (step 1 of paying),
  charge the card outside any row lock (step 2), replay it for a retry under the same key.
- confirm.py: step 3, in one transaction: sell (tickets issued, order paid), or cancel the
  order and refund the charge when the hold was lost; what a finished payment answers.
- sold_out.py: sections a process found sold out in the last second, refused from memory by
  the shop's fast path (app/views/holds_fast.py) while a flash crowd keeps asking.
- reconcile.py: a periodic task's work: finish payments a crash or a timeout left pending,
  retry refunds that failed (releasing expired holds, step 4, is release.py's).

The hot path runs as Core statements built once at import, not through the ORM: its unit of
work cost more CPU than the database did (bench/onsale.py). Each step writes in one statement
(data-modifying CTEs), counted by bench/purchase_cost.py (12 statements and 3 commits per
order). Rules are checked in Python on the rows locked before, and each write's row count
after. The status changes in those statements are the models' Transitions (Payment.CAPTURE,
Order.PAY, ...), the same definitions the model methods apply.

Callers import the modules (``from app.services import purchase``, then
``purchase.hold.reserve_spots``, ``purchase.checkout.checkout``): the module names the step.
"""

from app.services.purchase import (
    cart,
    checkout,
    confirm,
    hold,
    reconcile,
    release,
    sold_out,
    summary,
)

__all__ = ["cart", "checkout", "confirm", "hold", "reconcile", "release", "sold_out", "summary"]
