"""Tickets that travel: a paid order's tickets as a PDF (one page per valid ticket, its QR code
large enough for a gate camera on paper or on a phone) and the event as a calendar entry (.ics).

The shop's order page, the customer API and the order confirmation mail all hand out these
same documents. Their texts are in the reader's language (the request's, or the mail's: the
sender renders in it) and the event's times in the venue's zone, as everywhere else.

The QR code carries the ticket's ``code`` exactly as the order page's does: the signed payload
the gate scans (app/models/codes.py), so a printed ticket and the page admit alike.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import segno
from flask import url_for
from flask_babel import gettext
from fpdf import FPDF
from fpdf.errors import FPDFUnicodeEncodingException
from icalendar import Calendar, Timezone
from icalendar import Event as CalendarEvent
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.i18n import current_locale
from app.models import (
    Conflict,
    EventSection,
    EventSpot,
    NotFound,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    TicketType,
    format_money,
    local_time,
)
from app.models.codes import unb64
from app.models.order import seat_label

FONTS = Path(__file__).resolve().parent.parent / "static" / "fonts"
# DejaVu covers Latin, Greek and Cyrillic: fpdf2's core fonts are Latin-1 only, and an event
# named "Ópera — Noite de Gala" must print as it was typed.
FONT = "DejaVu"
PDF_MIMETYPE = "application/pdf"
ICS_MIMETYPE = "text/calendar"
# The QR code's printed side. A gate camera reads a code of this size (version 8-10 for a
# ticket's ~130 characters at error correction M) from paper held at arm's length and from a
# phone's screen; the quiet zone (4 modules, as the standard asks) is inside it.
QR_MM = 70.0
QR_BORDER = 4
INK = (29, 29, 36)
BRAND = (59, 42, 140)
MUTED = (107, 107, 120)


class NoTickets(Conflict):
    """The order exists and is the customer's, but admits no one (not paid, or every ticket
    refunded): there is nothing to print. A 409 rather than a 404, so a client tells "not
    yours" from "not valid any more"."""

    code = "no_valid_tickets"


@dataclass(frozen=True)
class TicketLine:
    """One valid ticket as its documents print it."""

    id: int
    code: str
    section: str
    spot: str
    ticket_type: str | None
    price_cents: int
    currency: str
    holder_name: str | None

    @property
    def seat(self) -> str:
        return seat_label(self.section, self.spot)

    @property
    def type_name(self) -> str:
        return self.ticket_type or gettext("Full price")

    @property
    def short_code(self) -> str:
        """What a person reads under the QR code to tell tickets apart or quote one to support:
        the last 6 bytes of the code's signature (48 bits: in practice unique per ticket) in
        hexadecimal, grouped ("A3F9-01BC-7D2E": no letters to confuse, unlike base64's l, I, O
        and 0); the whole code is the QR's."""
        return short_code_of(self.code)

    @property
    def reference(self) -> str:
        return gettext("Ticket no. %(id)s · code %(code)s", id=self.id, code=self.short_code)


def short_code_of(code: str) -> str:
    """A ticket code's short text (TicketLine.short_code)."""
    digits = unb64(code)[-6:].hex().upper()
    return "-".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def owned_order(session: Session, customer_id: int, order_id: int) -> Order:
    """The customer's order whose documents are asked for: NotFound for a missing or another
    customer's order; NoTickets when it has nothing valid to print (a ticket transferred to
    someone else is theirs to print, not the buyer's)."""
    order = session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound(gettext("Order not found."))
    if order.status != OrderStatus.PAID or not any(
        t.owner_customer_id == customer_id for t in order.live_tickets
    ):
        raise NoTickets(gettext("This order has no valid tickets."))
    return order


def valid_tickets(
    session: Session, order: Order, *, held_by: int | None = None, ticket_id: int | None = None
) -> list[TicketLine]:
    """The order's valid tickets that ``held_by`` holds (by default the buyer: a ticket
    transferred to someone else is left out, its code is theirs), or only ``ticket_id`` among
    them, with their places and types, in one query, by ticket id."""
    holder = order.customer_id if held_by is None else held_by
    where = [func.coalesce(Ticket.owner_id, order.customer_id) == holder]
    if ticket_id is not None:
        where.append(Ticket.id == ticket_id)
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.code,
            EventSection.name.label("section"),
            EventSpot.label.label("spot"),
            TicketType.name.label("ticket_type"),
            Ticket.price_cents,
            Ticket.currency,
            Ticket.holder_name,
        )
        .join(EventSection, EventSection.id == Ticket.section_id)
        .join(EventSpot, EventSpot.id == Ticket.spot_id)
        .outerjoin(TicketType, TicketType.id == Ticket.ticket_type_id)
        .where(
            Ticket.order_id == order.id,
            Ticket.status == TicketStatus.VALID,
            Ticket.code.is_not(None),
            *where,
        )
        .order_by(Ticket.id)
    ).all()
    return [TicketLine(**row._asdict()) for row in rows]


def pdf_filename(order: Order) -> str:
    return f"tickets-order-{order.id}.pdf"


def ics_filename(order: Order) -> str:
    return f"order-{order.id}.ics"


@functools.lru_cache(maxsize=4096)
def _qr(code: str) -> segno.QRCode:
    """A code's QR symbol, encoded once: a confirmation draws each ticket's twice (the mail's
    image and the PDF's), and choosing the best mask is most of a symbol's cost."""
    return segno.make(code, error="m")


def qr_png(code: str, scale: int = 6) -> bytes:
    """A ticket's code as a PNG QR code with its quiet zone (for a mail's inline image)."""
    out = io.BytesIO()
    _qr(code).save(out, kind="png", scale=scale, border=QR_BORDER)
    return out.getvalue()


def venue_line(order: Order) -> str:
    """Where, as one line: the venue, its address if given, the city."""
    event = order.event
    return ", ".join(part for part in (event.venue, event.address, event.city) if part)


# -- PDF ------------------------------------------------------------------------------------------


def tickets_pdf(session: Session, order: Order, tickets: list[TicketLine] | None = None) -> bytes:
    """One A4 page per valid ticket of the order; empty tickets draw nothing (the callers
    refuse such an order first: owned_order)."""
    tickets = valid_tickets(session, order) if tickets is None else tickets
    try:
        return _tickets_pdf(order, tickets, embedded=False)
    except FPDFUnicodeEncodingException:  # a name beyond Latin-1 ("—", "東京")
        return _tickets_pdf(order, tickets, embedded=True)


class _TicketPdf(FPDF):
    font_name = "helvetica"


def _tickets_pdf(order: Order, tickets: list[TicketLine], *, embedded: bool) -> bytes:
    """The PDF in the PDF readers' own Helvetica when every text is Latin-1 (Portuguese is):
    nothing to parse, subset and embed, a fraction of the time and size. Else in DejaVu Sans,
    embedded, which prints any name."""
    event = order.event
    pdf = _TicketPdf(orientation="portrait", unit="mm", format="A4")
    if embedded:
        pdf.font_name = FONT
        pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(gettext("Tickets: %(event)s", event=event.name))
    pdf.set_author(event.partner.name)
    pdf.set_creator("Bilheteria")
    pdf.set_auto_page_break(False)
    pdf.set_margins(18, 18, 18)
    when = local_time.format_local(event.starts_at, event.zone_name, current_locale())
    for number, ticket in enumerate(tickets, start=1):
        pdf.add_page()
        _ticket_page(pdf, order, ticket, when, number, len(tickets))
    return bytes(pdf.output())


def _ticket_page(
    pdf: _TicketPdf, order: Order, ticket: TicketLine, when: str, number: int, count: int
) -> None:
    event = order.event
    width = pdf.w - pdf.l_margin - pdf.r_margin
    # The brand's band, with which ticket of how many this is.
    pdf.set_fill_color(*BRAND)
    pdf.rect(0, 0, pdf.w, 14, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(pdf.font_name, "B", 12)
    pdf.set_xy(pdf.l_margin, 3.5)
    pdf.cell(width / 2, 7, "Bilheteria")
    pdf.set_font(pdf.font_name, "", 10)
    pdf.cell(
        width / 2,
        7,
        gettext("Ticket %(number)s of %(count)s", number=number, count=count),
        align="R",
    )

    pdf.set_text_color(*INK)
    pdf.set_xy(pdf.l_margin, 22)
    pdf.set_font(pdf.font_name, "B", 20)
    pdf.multi_cell(width, 9, event.name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.font_name, "", 11)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        width,
        6,
        gettext("Organised by %(partner)s", partner=event.partner.name),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    _field(pdf, width, gettext("When"), when)
    _field(pdf, width, gettext("Where"), venue_line(order))

    half = width / 2
    top = pdf.get_y()
    _field(pdf, half - 4, gettext("Section"), ticket.section)
    _field(pdf, half - 4, gettext("Ticket type"), ticket.type_name)
    if ticket.holder_name:
        _field(pdf, half - 4, gettext("Holder"), ticket.holder_name)
    left_end = pdf.get_y()
    pdf.set_xy(pdf.l_margin + half, top)
    _field(pdf, half, gettext("Seat"), ticket.spot, x=pdf.l_margin + half)
    _field(
        pdf,
        half,
        gettext("Price"),
        format_money(ticket.price_cents, ticket.currency),
        x=pdf.l_margin + half,
    )
    _field(pdf, half, gettext("Order"), f"#{order.id}", x=pdf.l_margin + half)
    pdf.set_y(max(left_end, pdf.get_y()) + 4)

    # The code, centred, on white: dark modules as filled runs (crisp at any zoom or print).
    qr_top = max(pdf.get_y(), 128.0)
    draw_qr(pdf, ticket.code, (pdf.w - QR_MM) / 2, qr_top, QR_MM)
    pdf.set_xy(pdf.l_margin, qr_top + QR_MM + 2)
    pdf.set_font(pdf.font_name, "B", 12)
    pdf.set_text_color(*INK)
    pdf.cell(width, 6, ticket.reference, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(pdf.font_name, "", 9.5)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        width,
        5,
        gettext(
            "Show this code at the gate, printed or on your phone's screen. It admits one "
            "person; whoever shows it first enters, so do not share it."
        ),
        align="C",
    )


def _field(
    pdf: _TicketPdf, width: float, label: str, value: str, *, x: float | None = None
) -> None:
    """A small grey label over its value, at ``x`` (the left margin by default)."""
    x = pdf.l_margin if x is None else x
    pdf.set_x(x)
    pdf.set_font(pdf.font_name, "", 8.5)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, 4.5, label.upper(), new_x="LEFT", new_y="NEXT")
    pdf.set_x(x)
    pdf.set_font(pdf.font_name, "B", 12.5)
    pdf.set_text_color(*INK)
    pdf.multi_cell(width, 6.2, value or "-", new_x="LEFT", new_y="NEXT")
    pdf.ln(2.2)


def draw_qr(pdf: FPDF, code: str, x: float, y: float, size: float) -> None:
    """The QR code of ``code`` as vector rectangles, ``size`` mm square including its quiet
    zone (painted white, whatever lies under it)."""
    matrix = [list(row) for row in _qr(code).matrix_iter(border=QR_BORDER)]
    module = size / len(matrix)
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            # A hair taller than the module: no pale seams between rows in a viewer's
            # anti-aliasing.
            pdf.rect(x + start * module, y + r * module, (c - start) * module, module + 0.02, "F")


# -- calendar -------------------------------------------------------------------------------------


def order_ics(session: Session, order: Order, tickets: list[TicketLine] | None = None) -> bytes:
    """The event as one calendar entry (VEVENT) for the order: in the venue's zone (its
    VTIMEZONE included), with the order's page as its URL and the seats in its description.
    Its UID is the order's and the event's, so importing it again updates the same entry."""
    tickets = valid_tickets(session, order) if tickets is None else tickets
    event = order.event
    url = url_for("shop.order", order_id=order.id, _external=True)
    calendar = Calendar()
    calendar.add("prodid", "-//Bilheteria//Tickets//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    entry = CalendarEvent()
    entry.add("uid", f"order-{order.id}-event-{event.id}@bilheteria")
    stamp = order.paid_at or order.created_at
    entry.add("dtstamp", stamp.replace(tzinfo=dt.UTC))
    entry.add("dtstart", local_time.to_local(event.starts_at, event.zone_name))
    if event.ends_at is not None:
        entry.add("dtend", local_time.to_local(event.ends_at, event.zone_name))
    entry.add("summary", event.name)
    entry.add("location", venue_line(order))
    entry.add("url", url)
    entry.add("status", "CONFIRMED")
    entry.add("transp", "OPAQUE")
    lines = [
        gettext("Organised by %(partner)s", partner=event.partner.name),
        gettext("Order #%(id)s", id=order.id),
        "",
        *(
            f"{ticket.seat} · {ticket.type_name}"
            + (f" · {ticket.holder_name}" if ticket.holder_name else "")
            for ticket in tickets
        ),
        "",
        url,
    ]
    entry.add("description", "\n".join(lines))
    calendar.add_component(entry)
    for tzid in sorted(calendar.get_missing_tzids()):  # the venue's zone, defined in the file
        calendar.subcomponents.insert(0, _vtimezone(tzid))
    return calendar.to_ical()


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> Timezone:
    """A zone's VTIMEZONE, worked out once per process (its transitions over the years take
    icalendar most of a calendar entry's time); only read afterwards."""
    return Timezone.from_tzid(tzid)
