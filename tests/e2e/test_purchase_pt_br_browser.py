"""A Brazilian browser (Accept-Language: pt-BR) buys two seats: every step of the purchase speaks
Portuguese, prices and totals included; switching to English on the way is remembered.
Real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models.base import utcnow
from tests.support.builders import make_event, make_partner
from tests.support.shop import CUSTOMER_PASSWORD


@pytest.mark.browser
def test_a_brazilian_customer_buys_two_seats_in_portuguese(
    live_server: str, browser_page_pt_br: Page
) -> None:
    event = make_event(make_partner("Aurora"), "Samba de Roda", rows=("A", "B"), seats=6)
    event.publish()
    db.session.commit()
    db.session.remove()
    page = browser_page_pt_br

    page.goto(live_server + "/signup")
    expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    expect(page.get_by_role("heading", name="Crie sua conta")).to_be_visible()
    page.get_by_label("Nome", exact=True).fill("Ana Souza")
    page.get_by_label("E-mail").fill("ana@example.com")
    page.get_by_label("Senha (8 ou mais caracteres)").fill(CUSTOMER_PASSWORD)
    page.get_by_role("button", name="Cadastre-se").click()
    expect(page.locator(".flash-success")).to_contain_text("Bem-vindo(a), Ana Souza!")

    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Encontre seu próximo evento")).to_be_visible()
    page.get_by_role("searchbox", name="Buscar").fill("samba")
    page.get_by_role("button", name="Buscar").click()
    page.get_by_role("link", name=re.compile("Samba de Roda")).click()
    expect(page.locator("table.sections th").first).to_have_text("Setor")
    page.get_by_role("button", name="Escolher lugares").click()
    page.locator("#seatmap-grid button.seat", has_text=re.compile(r"^3$")).first.click()
    page.locator("#seatmap-grid button.seat", has_text=re.compile(r"^4$")).first.click()
    expect(page.locator("#seatmap-count")).to_have_text("2")
    page.get_by_role("button", name="Reservar estes lugares").click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    expect(page.locator(".countdown")).to_contain_text("Seus lugares estão reservados por")

    page.get_by_label("Número do cartão").fill("4242 4242 4242 4242")
    page.get_by_label("Mês de validade").fill("12")
    page.get_by_label("Ano de validade").fill(str(utcnow().year + 2))
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Nome no cartão").fill("Ana Souza")
    page.get_by_role("button", name="Continuar").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "Pagamento aprovado: aqui estão seus ingressos."
    )
    expect(page.locator(".ticket svg")).to_have_count(2)
    page.get_by_role("link", name="Meus pedidos").click()
    expect(page.locator(".order")).to_contain_text("pago")

    # The switcher: English from now on, though the browser asks for Portuguese.
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()
    expect(page.locator(".order")).to_contain_text("paid")
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Find your next event")).to_be_visible()
