"""Roles as data: what each role may do, as (view or menu, permission) patterns.

``flask perms sync`` (run at deploy) creates every view's permissions and writes these sets
into the database, so no process touches permissions at start-up. Patterns are full-match
regular expressions against FAB's view-menu and permission names.
"""

from __future__ import annotations

import re
from typing import Any

SELF_SERVICE = [
    # The user view is registered as PartnerUserDBModelView (security.py).
    ("(Partner)?UserDBModelView", "can_userinfo|userinfoedit"),
    ("ResetMyPasswordView", "can_this_form_(get|post)"),
    ("UserInfoEditView", "can_this_form_(get|post)"),
]

# Staff may turn two-factor sign-in on (customers sign in to the shop without it).
STAFF_SELF_SERVICE = [
    *SELF_SERVICE,
    ("TwoFactorView", "can_(index|enrol|disable)"),
    ("(Security|Two-factor sign-in)", "menu_access"),
]

# Action permissions are the bare action names (publish, block, generate ...); FAB's file
# download route is not used by these views.
PARTNER_CATALOG = [
    (
        "(EventView|EventSectionView|EventSpotView|TicketTypeView|PromoCodeView|OrderView)",
        "(?!can_download$).*",
    ),
    ("EventOverviewView", "can_show"),
    ("LedgerTransactionView", "can_(list|show|export_csv)"),
    ("BalanceView", "can_index"),
    ("(PayoutView|PayoutItemView)", "can_(list|show|export_csv)"),
    # Its own sales and statements (the view and the service hold the partner to them).
    ("ReportView", "can_(list|show|add|download)"),
    ("(Money|Orders|Ledger|Balances|Payouts|Reports)", "menu_access"),
    ("(EventApi|EventSectionApi|EventSpotApi|TicketTypeApi|PromoCodeApi)", "can_.*"),
    ("(Events|Sections|Ticket types|Spots|Promo codes|Catalog)", "menu_access"),
    # Its events' waiting lists and their conversions (read only).
    ("WaitlistEntryView", "can_(list|show|conversions)"),
    ("(Waiting lists|Waiting-list conversions)", "menu_access"),
    ("(GateDeviceView|GateAssignmentView|CheckInView)", "(?!can_download$).*"),
    ("(Check-in|Gate devices|Gate staff|Scan log)", "menu_access"),
    # Changes to its own rows (the view's base filter holds it to them).
    ("AuditEntryView", "can_(list|show|export_csv)"),
    ("(Platform|Audit log)", "menu_access"),
    # Its own webhook endpoints and their deliveries (sent again with "Send again").
    ("(WebhookEndpointView|WebhookDeliveryView)", "(?!can_download$).*"),
    ("(Integrations|Webhooks|Webhook deliveries)", "menu_access"),
]

ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "Admin": [(".*", ".*")],
    "Partner": [*STAFF_SELF_SERVICE, *PARTNER_CATALOG],
    "Finance": [
        *STAFF_SELF_SERVICE,
        ("(EventView|EventSectionView|PartnerView|CustomerView)", "can_(list|show)"),
        # An event's business overview (the home shows every partner's figures).
        ("EventView", "overview"),
        ("EventOverviewView", "can_show"),
        ("PartnerView", "can_reserve|reserve"),
        ("(OrderView|LedgerTransactionView)", "can_(list|show|export_csv)"),
        ("BalanceView", "can_index"),
        ("(SettlementView|SettlementLineView|SettlementMismatchView)", "can_(list|show)"),
        ("(PayoutView|PayoutItemView)", "can_(list|show|export_csv)"),
        ("PayoutView", "can_mark_paid|approve|mark_paid|cancel_payout"),
        ("ReportView", "can_(list|show|add|download)"),
        # The settlement of a day and the payout run, now (after a confirmation page).
        ("MoneyRunsView", "can_(index|settle|payouts)"),
        (
            "(Money|Orders|Ledger|Balances|Payouts|Settlements|Mismatches|Reports|Money runs)",
            "menu_access",
        ),
        ("(EventApi|EventSectionApi)", "can_(get|info)"),
        ("(Events|Sections|Partners|Customers|Catalog|Platform)", "menu_access"),
    ],
    "Gate": [
        # The gate page talks only to the check-in API (its own token checks); the dashboard
        # shows the partner's events and the scan log, nothing of the partner REST API.
        *STAFF_SELF_SERVICE,
        ("EventView", "can_(list|show)"),
        ("(Events|Catalog)", "menu_access"),
        ("CheckInView", "can_(list|show|live|export_csv)"),
        ("(Check-in|Scan log)", "menu_access"),
    ],
    "Customer": [*SELF_SERVICE, ("(HoldApi|OrderApi|QueueApi|TicketApi|WaitlistApi)", ".*")],
}


def sync_permissions(appbuilder: Any) -> dict[str, int]:
    """Create every view's permissions, then make each role's permission set exactly the one
    declared above. Idempotent; returns how many permissions each role holds."""
    sm = appbuilder.sm
    role_names = [*ROLE_PERMISSIONS, sm.auth_role_public]
    for role_name in role_names:
        # FAB grants new permissions to the admin role as it creates them: it must exist first.
        if sm.find_role(role_name) is None:
            sm.add_role(role_name)
    appbuilder.add_permissions(update_perms=True)
    session = sm.session
    all_pvs = session.query(sm.permissionview_model).all()
    counts: dict[str, int] = {}
    for role_name in role_names:
        patterns = [
            (re.compile(view), re.compile(perm))
            for view, perm in ROLE_PERMISSIONS.get(role_name, [])
        ]
        role = sm.find_role(role_name)
        role.permissions = [
            pv
            for pv in all_pvs
            if any(
                view.fullmatch(pv.view_menu.name) and perm.fullmatch(pv.permission.name)
                for view, perm in patterns
            )
        ]
        counts[role_name] = len(role.permissions)
    session.commit()
    sm.permission_cache.clear()
    return counts
