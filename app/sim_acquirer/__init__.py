"""A simulated card acquirer, standing in for a third party (think Stripe) in the embedded default.

It is deliberately separate from Bilheteria's code: its own tables (``sim_acquirer_*``), its own
database sessions, its own HTTP endpoint for tokenization. Bilheteria talks to it only through
``app.services.payments.SimulatedGateway``, as it would through a provider's SDK.

Card data reaches only ``POST /sim-acquirer/v1/tokens``; the acquirer keeps the brand, the last
4 digits, the expiry and the test behaviour the number stands for, never the number or the CVC.

Test cards (any future expiry, any CVC):

| number | result |
|---|---|
| 4242424242424242 | approved |
| 4000000000000002 | declined (card_declined) |
| 4000000000009995 | declined (insufficient_funds) |
| 4000000000000119 | processing error |
| 4000000000000259 | approved after a 5 s delay |

Any other number passing the Luhn check is approved.

``chargeback(charge_id, reason)`` simulates a dispute lost by the merchant.
``settlement_report(day)`` is the daily report: each charge captured that UTC day (with the
acquirer's fee, ``SIM_ACQUIRER_FEE_PERCENT`` of the amount rounded half up to the cent plus
``SIM_ACQUIRER_FEE_FIXED_CENTS``), each refund and chargeback (no fee), the net of each line and
the totals per currency.
"""

from app.sim_acquirer.api import (
    CardError,
    charge,
    chargeback,
    refund,
    settlement_report,
    tokenize,
)
from app.sim_acquirer.http import bp

__all__ = ["CardError", "bp", "charge", "chargeback", "refund", "settlement_report", "tokenize"]
