"""Portuguese (the default) and English: the language follows the switcher's choice (kept in the
session and, for a signed-in user, across sessions), else Accept-Language, else pt-BR; the
pages, the gate page, error pages and API error messages speak it, the `error` codes stay
English; outside a request (tasks) the default is spoken.

The suite's client asks for English (tests/support/apps.py): these tests ask for pt-BR, or for
nothing, themselves.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.i18n import current_locale
from app.models import PartnerUser
from tests.support.pages import another_client, page_sign_up, path_of, text
from tests.support.shop import sign_up

FIND = {"pt_BR": "Encontre seu próximo evento", "en": "Find your next event"}


def no_language(client: FlaskClient) -> FlaskClient:
    """The client as a browser that sends no Accept-Language."""
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)
    return client


def html_lang(page: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', page)
    return match.group(1) if match else ""


def test_without_accept_language_the_shop_speaks_portuguese(client: FlaskClient) -> None:
    page = text(no_language(client).get("/"))
    assert FIND["pt_BR"] in page and FIND["en"] not in page
    assert html_lang(page) == "pt-BR"
    assert "Entrar" in page and "Cadastre-se" in page


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("pt-BR,pt;q=0.9,en;q=0.8", "pt_BR"),
        ("pt", "pt_BR"),
        ("fr-FR,de;q=0.5", "pt_BR"),  # neither: the default
        ("de,en-GB;q=0.5", "en"),
    ],
)
def test_accept_language_picks_the_best_of_portuguese_and_english(
    client: FlaskClient, header: str, locale: str
) -> None:
    page = text(client.get("/", headers={"Accept-Language": header}))
    assert FIND[locale] in page
    assert html_lang(page) == locale.replace("_", "-")


def test_the_switcher_overrides_accept_language_and_is_remembered(client: FlaskClient) -> None:
    assert FIND["en"] in text(client.get("/"))  # the client asks for English
    switched = client.get("/language/pt_BR?next=/%3Fq%3Drock")
    assert switched.status_code == 302 and path_of(switched) == "/?q=rock"
    for _ in range(2):  # remembered: every later page, though the browser still asks for English
        assert FIND["pt_BR"] in text(client.get("/"))
    client.get("/language/en?next=/")
    assert FIND["en"] in text(client.get("/"))


def test_the_shop_header_links_each_language_back_to_the_page(client: FlaskClient) -> None:
    page = text(client.get("/?q=rock"))
    assert 'href="/language/pt_BR?next=%2F%3Fq%3Drock"' in page
    assert re.search(r'<strong class="language current" lang="en">English</strong>', page)


def test_the_switcher_goes_back_only_to_this_site(client: FlaskClient) -> None:
    for outside in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.get("/language/pt_BR", query_string={"next": outside})
        assert path_of(response) == "/"
    assert client.get("/language/xx").status_code == 302  # an unknown one: the default
    assert FIND["pt_BR"] in text(client.get("/"))


def test_a_signed_in_users_choice_is_kept_across_sessions(app: Flask, client: FlaskClient) -> None:
    page_sign_up(client, "lia@example.com", "Lia Prado")
    client.get("/language/pt_BR?next=/")
    user = db.session.query(PartnerUser).filter_by(email="lia@example.com").one()
    assert user.locale == "pt_BR"
    browser = another_client(client)  # a new browser, asking for English, signs in
    assert FIND["en"] in text(browser.get("/"))
    browser.post("/login/", data={"username": "lia@example.com", "password": "Ingresso-Azul-77"})
    assert FIND["pt_BR"] in text(browser.get("/"))


def test_the_shop_pages_speak_the_language_of_the_request(
    client: FlaskClient, on_sale: object
) -> None:
    event_id = on_sale.id  # type: ignore[attr-defined]
    pt = text(client.get(f"/events/{event_id}", headers={"Accept-Language": "pt-BR"}))
    en = text(client.get(f"/events/{event_id}"))
    assert "Setor" in pt and "Preço" in pt and "Melhores disponíveis" in pt
    assert "Section" in en and "Price" in en and "Best available" in en
    assert "Setor" not in en


def test_outside_a_request_the_default_language_is_spoken(app: Flask) -> None:
    """Celery tasks, the CLI: pt_BR."""
    with app.app_context():
        assert current_locale() == "pt_BR"


def test_the_gate_page_and_its_scripts_texts_speak_the_language(client: FlaskClient) -> None:
    import json

    def strings(page: str) -> dict[str, str]:
        match = re.search(r'id="gate-strings">(.*?)</script>', page, re.S)
        assert match
        return json.loads(match.group(1))

    pt = text(client.get("/gate/", headers={"Accept-Language": "pt-BR"}))
    assert html_lang(pt) == "pt-BR" and "Escolha o evento" in pt
    assert strings(pt)["Welcome"] == "Bem-vindo(a)"
    assert strings(pt)["Entered %(time)s at %(gate)s"] == "Entrou em %(time)s pela %(gate)s"
    en = text(client.get("/gate/"))
    assert html_lang(en) == "en" and "Pick the event" in en
    assert strings(en)["Welcome"] == "Welcome"


def test_api_error_messages_speak_the_language_and_keep_their_code(
    client: FlaskClient, on_sale: object
) -> None:
    """A domain error's message (app/models, app/services) in the request's language; the
    `error` code, for programs, stays English."""
    headers = {"Accept-Language": "pt-BR"}
    pt = client.get("/api/v1/catalog/events/987654", headers=headers)
    en = client.get("/api/v1/catalog/events/987654")
    assert pt.status_code == en.status_code == 404
    assert pt.get_json()["error"] == en.get_json()["error"] == "not_found"
    assert pt.get_json()["message"] == "Evento não encontrado."
    assert en.get_json()["message"] == "Event not found."
    # a message with values: named parameters, placed where each language puts them
    token = sign_up(client)
    # The sign-up saved its language (English) as the customer's, which would win over the
    # request's: a customer without a saved language here.
    db.session.query(PartnerUser).update({"locale": None})
    db.session.commit()
    body = {"event_id": on_sale.id, "spot_ids": []}  # type: ignore[attr-defined]
    pt = client.post("/api/v1/holds/", json=body, headers=token | headers)
    en = client.post("/api/v1/holds/", json=body, headers=token)
    assert pt.get_json()["error"] == en.get_json()["error"]
    assert pt.get_json()["message"] != en.get_json()["message"]


def test_error_pages_speak_the_language(client: FlaskClient) -> None:
    pt = client.get("/no/such/page", headers={"Accept-Language": "pt-BR"})
    en = client.get("/no/such/page")
    assert pt.status_code == en.status_code == 404
    assert "Página não encontrada" in text(pt) and html_lang(text(pt)) == "pt-BR"
    assert "Page not found" in text(en)
    api = client.get("/api/v1/no-such-api", headers={"Accept-Language": "pt-BR"})
    assert api.get_json()["error"] == "not_found"
    assert api.get_json()["message"].startswith("Não há nada neste endereço")


def _catalog_ids() -> set[str]:
    from babel.messages.pofile import read_po

    from app.i18n import TRANSLATIONS

    with (TRANSLATIONS / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(po) if m.id}


def test_every_dashboard_label_title_and_menu_entry_is_in_the_catalog(app: Flask) -> None:
    """FAB's own labels of our columns ("starts_at": "Starts At"), ours, the views' titles and
    the menu: each is a msgid of the catalog (so translated, test_translations says)."""
    from flask_babel import force_locale

    known = _catalog_ids()
    shown: set[str] = set()
    with app.test_request_context(), force_locale("en"):
        for view in app.appbuilder.baseviews:
            if not type(view).__module__.startswith("app."):
                continue
            shown.update(
                str(label) for label in (getattr(view, "label_columns", None) or {}).values()
            )
            for attribute in ("list_title", "show_title", "add_title", "edit_title"):
                title = getattr(view, attribute, None)
                if title:
                    shown.add(str(title))
        for item in app.appbuilder.menu.get_list():
            shown.add(item.name)
            shown.update(child.name for child in item.childs or [] if child.name != "-")
    fabs = {"List Users", "Security", "List Roles", "User's Statistics", "Action Log", "-"}
    assert sorted(shown - known - fabs) == []


def test_the_dashboard_speaks_the_language(client: FlaskClient) -> None:
    from tests.support.builders import login, make_partner, make_user

    page = text(client.get("/login/", headers={"Accept-Language": "pt-BR"}))
    assert 'href="/language/en?next=%2Flogin%2F"' in page  # the switcher, in FAB's bar
    assert "Português (Brasil)" in page
    assert 'type="submit" value="Entrar"' in page  # FAB's own .mo says "Registrar": ours wins
    make_user("alice", "Partner", make_partner("Aurora"))
    login(client, "alice")
    client.get("/language/pt_BR")
    form = text(client.get("/eventview/add"))
    for label in ("Começa", "Fuso horário", "Início das vendas", "Catálogo", "Eventos"):
        assert label in form, label
    client.get("/language/en")
    form = text(client.get("/eventview/add"))
    for label in ("Starts", "Time zone", "Sales start", "Catalog", "Events"):
        assert label in form, label


@pytest.mark.parametrize(
    ("header", "first_columns"),
    [("pt-BR", ["Linha", "Id do repasse"]), ("en", ["Line", "Payout id"]), (None, ["Linha"])],
)
def test_report_headers_are_in_the_requesters_language(
    app: Flask, monkeypatch: pytest.MonkeyPatch, header: str | None, first_columns: list[str]
) -> None:
    """The file is written by a task (no request, the default language): its header speaks the
    language of the request that asked for it, kept with the report; a request without a
    language, pt-BR."""
    from pathlib import Path

    from app.models.base import utcnow
    from app.services import reports
    from tests.support.builders import make_user
    from tests.support.money import parse

    monkeypatch.setattr(reports, "enqueue", lambda *args: None)  # the task runs below
    finance = make_user("fiona", "Finance")
    headers = {"Accept-Language": header} if header else {}
    with app.app_context(), app.test_request_context(headers=headers):  # a request of its own
        actor = db.session.merge(finance)
        report = reports.request_report(db.session, actor, "payout_batch", "csv", now=utcnow())
        report_id, locale = report.id, report.params["locale"]
    assert locale == ("en" if header == "en" else "pt_BR")
    directory = Path(app.config["REPORTS_DIR"])
    with app.app_context():  # the task: no request
        report = reports.generate_report(db.session, report_id, directory)
        assert report.status == "done", report.error
        path = reports.report_file(report, directory)
    header_row = parse(path.read_bytes(), "csv")[0]
    assert header_row[: len(first_columns)] == first_columns
