"""Customer accounts: sign-up creates a platform user (role Customer) and its Customer row."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.models import Customer, DomainError, NotFound, Order, Payment, PaymentStatus, Ticket
from app.models.errors import Conflict

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


class EmailTaken(Conflict):
    code = "email_taken"


def sign_up(session: Session, sm: Any, name: str, email: str, password: str) -> Customer:
    """Create the customer's login (the email is the username) and Customer row."""
    name = (name or "").strip()
    email = (email or "").strip().lower()
    if not name:
        raise DomainError("Give your name.", field="name")
    if len(name) > 150:
        raise DomainError("The name is too long (150 characters at most).", field="name")
    if not EMAIL.match(email) or len(email) > 320:
        raise DomainError("Give a valid email address.", field="email")
    if len(password or "") < MIN_PASSWORD:
        raise DomainError(
            f"The password needs at least {MIN_PASSWORD} characters.", field="password"
        )
    taken = session.scalar(select(func.count()).where(func.lower(Customer.email) == email))
    if taken or sm.find_user(username=email) or sm.find_user(email=email):
        raise EmailTaken("An account with this email already exists: log in.", field="email")
    first, _, last = name.partition(" ")
    user = sm.add_user(
        email, first[:64], (last or "-")[:64], email, [sm.find_role("Customer")], password=password
    )
    if not user:
        raise EmailTaken("An account with this email already exists: log in.", field="email")
    customer = Customer(user_id=user.id, name=name, email=email)
    session.add(customer)
    session.commit()
    return customer


def customer_of(session: Session, user: Any) -> Customer:
    """The Customer row of a logged-in user; NotFound for staff without one."""
    user_id = getattr(user, "id", None)
    customer = (
        session.scalar(select(Customer).where(Customer.user_id == user_id)) if user_id else None
    )
    if customer is None:
        raise NotFound("This login has no customer account.")
    return customer


def orders_of(session: Session, customer_id: int) -> list[Order]:
    """The customer's purchase history, newest first: orders that were charged (paid, or
    cancelled and refunded, or charged back); unpaid attempts are left out."""
    charged = Payment.status.in_(
        [PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK]
    )
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id, Order.payments.any(charged))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .options(selectinload(Order.tickets), selectinload(Order.payments))
        )
    )


def order_of(session: Session, customer_id: int, order_id: int) -> Order:
    """One of the customer's orders, with its event, payments and tickets (three queries)."""
    order = session.get(
        Order,
        order_id,
        options=[
            joinedload(Order.event),
            selectinload(Order.payments),
            selectinload(Order.tickets).options(
                joinedload(Ticket.section), joinedload(Ticket.spot)
            ),
        ],
    )
    if order is None or order.customer_id != customer_id:
        raise NotFound("Order not found.")
    return order
