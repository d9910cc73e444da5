"""Customer pages: search, event and seat map, hold and card payment (orders and tickets:
shop_orders.py, on this blueprint).

Server-rendered and usable without JavaScript (best-available form, card form posted to the
acquirer with a return URL); shop.js adds the seat map, the countdown and in-page tokenization.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from flask_login import login_user
from markupsafe import Markup

from app.extensions import db
from app.i18n import current_locale, format_datetime
from app.local_urls import is_local_path
from app.models import DomainError, HoldStatus, NotFound, format_money, local_time
from app.models.base import MAX_INT, utcnow
from app.services import (
    catalog,
    customers,
    promos,
    purchase,
    waiting_room,
    waitlist,
)
from app.services.payments import gateway
from app.views.base import current_customer, current_user
from app.views.guards import is_id

bp = Blueprint("shop", __name__, template_folder="../templates")
# The card form's fields the acquirer sends back after a card error, to be shown again (never the
# number or the CVC).
CARD_TYPED = ("exp_month", "exp_year")


@bp.context_processor
def inject_appbuilder() -> dict[str, Any]:
    return {"appbuilder": current_app.appbuilder}


@bp.app_template_filter("money")
def money_filter(cents: int, currency: str = "BRL") -> str:
    return format_money(cents, currency)


@bp.app_template_filter("local_time")
def local_time_filter(utc: dt.datetime | None, timezone: str, *, seconds: bool = False) -> str:
    """A stored (UTC) time as people at the venue read it: "26/12/2026 21:00 BRT"."""
    return local_time.format_local(utc, timezone, current_locale(), seconds=seconds)


@bp.app_template_filter("datetime")
def datetime_filter(moment: dt.datetime | None) -> str:
    """26/12/2026 21:00 in pt_BR (app/i18n.py); the moment as given, its zone the caller's."""
    return format_datetime(moment)


@bp.app_template_filter("qr_svg")
def qr_svg(code: str) -> Markup:
    """A ticket's code as an inline SVG QR code."""
    svg = segno.make(code, error="m").svg_inline(scale=3, border=2, title="Ticket code")
    return Markup(svg)  # noqa: S704 - segno's own SVG output


def login_redirect(back_to: str | None = None) -> Any:
    """Send a visitor to log in, then back to a page (never to a POST-only URL); a logged-in
    staff user without a customer account is told so."""
    user = current_user()
    if user is not None and getattr(user, "is_authenticated", False):
        flash(gettext("This login has no customer account: sign up to buy tickets."), "error")
        return redirect(url_for(".home"))
    query = urlencode({"next": back_to or request.path})
    return redirect(f"{current_app.appbuilder.get_url_for_login}?{query}")


@bp.get("/")
def home() -> Any:
    search, errors = catalog.search_and_errors(request.args)
    for message in errors.values():
        flash(message, "error")
    page = catalog.search_events(db.session, search)
    lowest = catalog.lowest_prices(db.session, [e.id for e in page.events])
    return render_template(
        "shop/home.html",
        page=page,
        search=search,
        filters=catalog.filter_args(request.args),
        errors=errors,
        facets=catalog.facets(db.session, city=search.city),
        lowest=lowest,
    )


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> Any:
    try:
        event = catalog.public_event(db.session, event_id)
    except NotFound:
        abort(404)
    now = utcnow()
    customer = current_customer()
    if customer is not None:
        turn = waiting_room.turn_at(db.session, event, customer.id, now)
    else:  # a visitor: not in line
        turn = waiting_room.turn_of(event.id, event.waiting_room_per_minute, None, now)
    on_sale = event.is_on_sale(now)
    places = waitlist.places_of(db.session, customer.id, event.id) if customer else []
    promo, typed = None, request.args.get("code", "").strip()
    if typed:
        try:
            promo = promos.code_for_event(db.session, event, typed[:100], now)
        except DomainError as err:
            flash(err.message, "error")
    return render_template(
        "shop/event.html",
        promo=promo,
        typed_code=typed[:100],
        # Sections whose spots go to their waiting lists first (0: every section), and the
        # customer's entries of the event's lists.
        kept_for_line=waitlist.waiting_sections(db.session, event.id),
        # Capped types (half price) sold out by their cap or kept for their waiting lists.
        sold_out_types=waitlist.sold_out_types(db.session, event.id, now),
        places=[p for p in places if p.entry.open_at(now)],
        event=event,
        on_sale=on_sale,
        line_open=waiting_room.line_is_open(event, now),
        turn=turn,
        # The forms: of an event without a waiting room (a visitor holding is asked to log
        # in), or for the customer whose turn it is.
        can_hold=on_sale and (turn.status in (waiting_room.OPEN, waiting_room.ADMITTED)),
        seconds_left=int((turn.ends_at - now).total_seconds()) if turn.ends_at else None,
        sections=catalog.section_availability(db.session, event.id, now, promo),
        max_spots=current_app.config["MAX_SPOTS_PER_EVENT"],
        # What the customer holds here (their cart) and for how long.
        carts=purchase.summary.customer_carts(db.session, customer.id, event.id, now)
        if customer is not None
        else [],
        now=now,
    )


@bp.route("/events/<int:event_id>/queue", methods=["GET", "POST"])
def queue(event_id: int) -> Any:
    """The waiting room: join it (POST), then this page counts down to the customer's turn."""
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".queue", event_id=event_id))
    now = utcnow()
    try:
        event = catalog.public_event(db.session, event_id)
        if request.method == "POST":
            turn = waiting_room.join(db.session, customer.id, event_id, now)
        else:
            turn = waiting_room.turn_at(db.session, event, customer.id, now)
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".event", event_id=event_id))
    if not waiting_room.line_is_open(event, now):
        flash(gettext("Tickets for %(name)s are not on sale.", name=event.name), "error")
        return redirect(url_for(".event", event_id=event_id))
    if turn.status in (waiting_room.OPEN, waiting_room.ADMITTED):
        if turn.status == waiting_room.ADMITTED and request.method == "GET":
            flash(gettext("It is your turn: choose your seats."), "success")
        return redirect(url_for(".event", event_id=event_id))
    return render_template(
        "shop/queue.html",
        event=event,
        turn=turn,
        wait_seconds=int(turn.wait(now).total_seconds()),
        ahead=turn.ahead(now),
        # Come back when the turn is due, and at least every half minute to show progress.
        refresh=min(turn.retry_after(now), 30),
    )


@bp.post("/events/<int:event_id>/waitlist")
def join_waitlist(event_id: int) -> Any:
    """Join the waiting list of a sold-out section (or of the whole event, or of a ticket type
    sold out by its cap)."""
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".event", event_id=event_id))
    try:
        place = waitlist.join(
            db.session,
            customer.id,
            event_id,
            section_id=_optional_whole_number("section_id"),
            ticket_type_id=_optional_whole_number("ticket_type_id"),
            quantity=_optional_whole_number("quantity") or 1,
        )
    except DomainError as err:
        db.session.rollback()
        if isinstance(err, NotFound) and err.field is None:
            abort(404)
        flash(err.message, "error")
        return redirect(url_for(".event", event_id=event_id))
    if place.created:
        flash(gettext("You are in the waiting list: number %(n)s.", n=place.position), "success")
    else:
        flash(gettext("You are already in this waiting list."), "info")
    return redirect(url_for(".event", event_id=event_id))


@bp.post("/events/<int:event_id>/waitlist/leave")
def leave_waitlist(event_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".event", event_id=event_id))
    try:
        waitlist.leave(
            db.session, customer.id, event_id, section_id=_optional_whole_number("section_id")
        )
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".event", event_id=event_id))
    flash(gettext("You left the waiting list."), "success")
    return redirect(url_for(".event", event_id=event_id))


@bp.post("/events/<int:event_id>/hold")
def hold(event_id: int) -> Any:
    customer = current_customer()
    code = request.form.get("promo_code", "").strip() or None
    back = url_for(".event", event_id=event_id, code=code) if code else None
    if customer is None:
        return login_redirect(back or url_for(".event", event_id=event_id))
    try:
        spot_ids = [_whole_number(text, "spot_ids") for text in request.form.getlist("spot_ids")]
        # Seats picked on the map each name their type; best-available counts per type.
        per_seat = [_whole_number(t, "ticket_types") for t in request.form.getlist("ticket_types")]
        kinds = per_seat if spot_ids else _ticket_types_chosen()
        hold = purchase.hold.reserve_spots(
            db.session,
            customer.id,
            event_id,
            spot_ids=spot_ids or None,
            section_id=_optional_whole_number("section_id"),
            quantity=len(kinds) if kinds else _optional_whole_number("quantity"),
            ticket_type_ids=kinds or None,
            promo_code=code,
        )
    except DomainError as err:
        db.session.rollback()
        if isinstance(err, NotFound) and err.field is None:  # the event, not a section or spot
            abort(404)
        flash(err.message, "error")
        return redirect(back or url_for(".event", event_id=event_id))
    return redirect(url_for(".hold_page", hold_id=hold.id))


def _ticket_types_chosen() -> list[int]:
    """The form's quantity of each ticket type (``qty_<type id>``) as one type id per ticket."""
    chosen: list[int] = []
    most = current_app.config["MAX_SPOTS_PER_EVENT"]
    for name, text in request.form.items():
        if name.startswith("qty_") and text not in ("", "0"):
            kind = _whole_number(name.removeprefix("qty_"), "ticket_types")
            count = _whole_number(text, "quantity")
            if len(chosen) + count > most:
                raise DomainError(
                    gettext("At most %(most)s tickets per customer.", most=most), field="quantity"
                )
            chosen += [kind] * count
    if not chosen and any(name.startswith("qty_") for name in request.form):
        raise DomainError(gettext("Choose how many tickets of each type."), field="quantity")
    return chosen


def _whole_number(text: str, field: str) -> int:
    """An id or a count typed in a form: ASCII digits, 1 to MAX_INT (the id columns' range)."""
    if not is_id(text):
        raise DomainError(
            gettext(
                "%(field)s must be a whole number from 1 to %(max_int)s.",
                field=field,
                max_int=MAX_INT,
            ),
            field=field,
        )
    return int(text)


def _optional_whole_number(field: str) -> int | None:
    text = request.form.get(field, "")
    return _whole_number(text, field) if text else None


@bp.get("/holds/<int:hold_id>")
def hold_page(hold_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect()
    try:
        hold = purchase.summary.get_customer_hold(db.session, customer.id, hold_id)
    except NotFound:
        abort(404)
    now = utcnow()
    card = None
    token = request.args.get("card_token")
    if token:
        card = gateway().card(token)
    spots = purchase.summary.spots_of_hold(db.session, hold.id)
    return render_template(
        "shop/hold.html",
        hold=hold,
        spots=spots,
        event=hold.event,
        seconds_left=hold.seconds_left(now),
        total=purchase.summary.hold_total(spots),
        discount=sum(spot.held_discount_cents or 0 for spot in spots),
        card=card,
        card_error=request.args.get("card_error"),
        card_field=request.args.get("card_field"),
        card_typed={name: request.args.get(f"card_{name}", "") for name in CARD_TYPED},
        idempotency_key=uuid.uuid4().hex,
        this_year=now.year,
        customer_name=customer.name,
    )


@bp.post("/holds/<int:hold_id>/checkout")
def pay(hold_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".hold_page", hold_id=hold_id))
    try:
        # Another customer's hold is not found before the form is looked at (its messages
        # would show on whatever page that customer opens next).
        purchase.summary.get_customer_hold(db.session, customer.id, hold_id)
        result = purchase.checkout.checkout(
            db.session,
            gateway(),
            customer.id,
            hold_id,
            request.form.get("card_token", ""),
            request.form.get("idempotency_key", ""),
            # the total the page showed
            purchase.checkout.expected_total(request.form.get("expected_total_cents"), form=True),
            holder_names=request.form.getlist("holder_names") or None,
        )
    except purchase.confirm.CardDeclined as err:
        flash(err.message, "error")
        return redirect(url_for(".hold_page", hold_id=hold_id))
    except purchase.confirm.HoldLost as err:
        flash(err.message, "error")
        return redirect(url_for(".orders"))
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        if err.extra.get("order_id"):
            return redirect(url_for(".order", order_id=err.extra["order_id"]))
        return redirect(url_for(".hold_page", hold_id=hold_id))
    flash(gettext("Payment approved: here are your tickets."), "success")
    return redirect(url_for(".order", order_id=result.order_id))


@bp.post("/holds/<int:hold_id>/release")
def release(hold_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".hold_page", hold_id=hold_id))
    try:
        hold = purchase.release.release_hold(db.session, customer.id, hold_id)
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".orders"))
    flash(gettext("Your seats were released."), "success")
    return redirect(url_for(".event", event_id=hold.event_id))


@bp.post("/holds/<int:hold_id>/spots/<int:spot_id>/release")
def release_spot(hold_id: int, spot_id: int) -> Any:
    """One spot out of the customer's cart (the last one releases the hold)."""
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".hold_page", hold_id=hold_id))
    try:
        hold = purchase.release.release_spot(db.session, customer.id, hold_id, spot_id)
    except NotFound as err:
        if err.field is None:  # not the customer's hold
            abort(404)
        # The spot left the cart meanwhile (another tab, or the cart's time ran out).
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".hold_page", hold_id=hold_id))
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".hold_page", hold_id=hold_id))
    if hold.status == HoldStatus.ACTIVE:
        flash(gettext("The seat was taken out of your cart."), "success")
        return redirect(url_for(".hold_page", hold_id=hold_id))
    flash(gettext("Your seats were released."), "success")
    return redirect(url_for(".event", event_id=hold.event_id))


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Any:
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            customer = customers.sign_up(
                db.session,
                current_app.appbuilder.sm,
                request.form.get("name", ""),
                request.form.get("email", ""),
                request.form.get("password", ""),
            )
        except DomainError as err:
            db.session.rollback()
            errors[err.field or "form"] = err.message
        else:
            login_user(customer.user)
            flash(gettext("Welcome, %(name)s!", name=customer.name), "success")
            return redirect(_safe_next(request.args.get("next")))
    return render_template("shop/signup.html", errors=errors, form=request.form), (
        422 if errors else 200
    )


def _safe_next(target: str | None) -> str:
    return target if target and is_local_path(target) else "/"


@bp.route("/daily-summary/off/<token>", methods=["GET", "POST"])
def daily_summary_off(token: str) -> Any:
    """The link in a partner's daily sales e-mail: asks, then turns the summary off (a GET
    alone changes nothing: mail scanners follow links)."""
    from app.services.mail import partner_mails

    try:
        if request.method == "POST":
            partner = partner_mails.opt_out(db.session, token)
        else:
            partner = partner_mails.opt_out_partner(db.session, token)
    except NotFound:
        abort(404)
    return render_template(
        "shop/daily_summary_off.html", partner=partner, done=request.method == "POST"
    )
