"""Domain models, one module per aggregate, re-exported here."""

from app.models.account import LoginSession
from app.models.audit import AuditEntry
from app.models.checkin import CheckIn, ScanDirection, ScanResult
from app.models.customer import Customer
from app.models.errors import Busy, Conflict, DomainError, Forbidden, InvalidRequest, NotFound
from app.models.event import Event, EventStatus
from app.models.gate import CheckinEntry, GateAssignment, GateDevice, token_hash
from app.models.ledger import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerError,
    LedgerTransaction,
    TransactionKind,
)
from app.models.mail import MailStatus, OutboxMail, PasswordReset
from app.models.money import format_money
from app.models.order import Hold, HoldStatus, Order, OrderStatus, Ticket, TicketStatus
from app.models.partner import Partner, PartnerStatus, PartnerUser
from app.models.payment import Payment, PaymentRefund, PaymentStatus, RefundStatus
from app.models.payout import Payout, PayoutItem, PayoutStatus
from app.models.promo import PromoCode, PromoCodeRefused, PromoKind
from app.models.report import KIND_LABELS, Report, ReportFormat, ReportKind, ReportStatus
from app.models.section import EventSection, SectionKind
from app.models.settlement import (
    LineKind,
    MismatchKind,
    Settlement,
    SettlementDay,
    SettlementLine,
    SettlementMismatch,
)
from app.models.spot import EventSpot, SpotStatus
from app.models.ticket_type import TicketKind, TicketType
from app.models.waiting_room import WaitingEntry, WaitingLine
from app.models.waitlist import WaitlistEntry, WaitlistStatus
from app.models.webhook import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookKind

__all__ = [
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookKind",
    "MailStatus",
    "OutboxMail",
    "PasswordReset",
    "TicketKind",
    "TicketType",
    "PromoCode",
    "PromoCodeRefused",
    "PromoKind",
    "AuditEntry",
    "WaitingEntry",
    "WaitingLine",
    "WaitlistEntry",
    "WaitlistStatus",
    "AccountKind",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerError",
    "LedgerTransaction",
    "TransactionKind",
    "Busy",
    "CheckIn",
    "CheckinEntry",
    "GateAssignment",
    "GateDevice",
    "token_hash",
    "Conflict",
    "Customer",
    "DomainError",
    "Event",
    "EventSection",
    "EventSpot",
    "EventStatus",
    "Forbidden",
    "Hold",
    "HoldStatus",
    "LineKind",
    "LoginSession",
    "MismatchKind",
    "InvalidRequest",
    "NotFound",
    "Order",
    "OrderStatus",
    "Partner",
    "PartnerStatus",
    "PartnerUser",
    "Payment",
    "PaymentRefund",
    "PaymentStatus",
    "Payout",
    "PayoutItem",
    "PayoutStatus",
    "RefundStatus",
    "KIND_LABELS",
    "Report",
    "ReportFormat",
    "ReportKind",
    "ReportStatus",
    "ScanDirection",
    "ScanResult",
    "SectionKind",
    "Settlement",
    "SettlementDay",
    "SettlementLine",
    "SettlementMismatch",
    "SpotStatus",
    "Ticket",
    "TicketStatus",
    "format_money",
]
