"""Search in Portuguese as people type it: without accents or with, in any case, in the plural;
the city filter lists a city once however its partners spelled it (migration 13526b5f3cae)."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import text as sql

from app.extensions import db
from app.models import Event
from app.models.base import utcnow
from app.services import catalog
from tests.support.builders import make_event, make_partner
from tests.support.database import explain
from tests.support.pages import listed, text


@pytest.fixture
def gala():
    """Events whose words carry accents, of two partners who spell São Paulo differently."""
    aurora, bossa = make_partner("Aurora"), make_partner("Bossa")
    events = {
        "gala": make_event(
            aurora,
            "Orquestra Sinfônica: Noite de Gala",
            city="São Paulo",
            venue="Theatro Municipal",
            description="Concertos de verão",
        ),
        "samba": make_event(bossa, "Samba na Praça", city="Sao Paulo", venue="Praça Roosevelt"),
        "stadium": make_event(bossa, "Final do Campeonato", city="SAO PAULO", venue="Estádio"),
        "frevo": make_event(bossa, "Frevo", city="Recife", venue="Marco Zero"),
        "draft": make_event(aurora, "Rascunho", city="Sâo Paulo", venue="Sala"),  # not on sale
    }
    for name, event in events.items():
        if name != "draft":
            event.publish()
    db.session.commit()
    return events


def _found(text_: str = "", city: str = "") -> set[int]:
    page = catalog.search_events(db.session, catalog.Search(text=text_, city=city))
    return {e.id for e in page.events}


def _ids(events, *names):
    return {events[name].id for name in names}


@pytest.mark.parametrize("query", ["sao paulo", "São Paulo", "SAO PAULO", "são PAULO", "SÃO"])
def test_a_city_is_found_with_or_without_accents_in_any_case(gala, query):
    assert _found(query) == _ids(gala, "gala", "samba", "stadium")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("orquestra sinfonica", ["gala"]),
        ("orquestra sinfônica", ["gala"]),
        ("ORQUESTRA SINFÔNICA", ["gala"]),
        ("orquestras", ["gala"]),  # the plural: Portuguese stems
        ("sinfônicas", ["gala"]),
        ("concerto verao", ["gala"]),  # the description, folded and stemmed
        ("praca", ["samba"]),
        ("estadio", ["stadium"]),
        ("sinfonica -gala", []),  # web search syntax still works
        ('"noite de gala"', ["gala"]),
        ("rascunho", []),  # drafts stay hidden
    ],
)
def test_words_are_found_without_accents_in_any_case_and_inflection(gala, query, expected):
    assert _found(query) == _ids(gala, *expected)


def test_the_catalog_api_and_the_shop_page_search_the_same_way(client, gala):
    expected = _ids(gala, "gala", "samba", "stadium")
    for query in ("sao paulo", "São Paulo", "SAO PAULO"):
        body = client.get("/api/v1/catalog/events", query_string={"q": query}).get_json()
        assert {e["id"] for e in body["result"]} == expected and body["count"] == 3
        page = client.get("/", query_string={"q": query})
        assert set(listed(page)) == expected
    body = client.get("/api/v1/catalog/events", query_string={"q": "orquestra sinfonica"})
    assert [e["name"] for e in body.get_json()["result"]] == ["Orquestra Sinfônica: Noite de Gala"]
    assert listed(client.get("/?q=orquestras+sinf%C3%B4nicas")) == [gala["gala"].id]


def _city_options(page: str) -> list[tuple[str, bool]]:
    """The cities the filter offers (not "Any city"), and whether each is the one selected."""
    select = re.search(r'<select name="city".*?</select>', page, re.S).group(0)
    return [
        (html.unescape(name), "selected" in attrs)
        for attrs, name in re.findall(r"<option ([^>]*)>([^<]*)</option>", select)
        if 'value=""' not in attrs
    ]


def test_the_city_filter_lists_each_city_once_under_its_accented_spelling(client, gala):
    facets = catalog.facets(db.session)
    assert facets["cities"] == ["Recife", "São Paulo"]
    assert _city_options(text(client.get("/"))) == [("Recife", False), ("São Paulo", False)]
    for city in ("São Paulo", "sao paulo", "SÃO PAULO", " Sao Paulo "):
        expected = _ids(gala, "gala", "samba", "stadium")
        assert _found(city=city) == expected
        body = client.get("/api/v1/catalog/events", query_string={"city": city}).get_json()
        assert {e["id"] for e in body["result"]} == expected
        page = client.get("/", query_string={"city": city})
        assert set(listed(page)) == expected
        # The filter shows the city chosen, in the spelling it lists.
        assert _city_options(text(page)) == [("Recife", False), ("São Paulo", True)]
    assert _found(city="Recife") == _ids(gala, "frevo")
    assert _found(city="Sao") == set()  # a city is matched whole


def test_the_listed_spelling_prefers_accents_then_mixed_case_then_the_most_used():
    assert catalog.best_spelling({"Sao Paulo": 5, "São Paulo": 1}) == "São Paulo"
    assert catalog.best_spelling({"SÃO PAULO": 3, "São Paulo": 1}) == "São Paulo"
    assert catalog.best_spelling({"SAO PAULO": 3, "Sao Paulo": 1}) == "Sao Paulo"
    assert catalog.best_spelling({"Sao paulo": 1, "Sao Paulo": 2}) == "Sao Paulo"
    assert catalog.best_spelling({"Goiânia": 1, "Goiania": 1}) == "Goiânia"
    assert catalog.best_spelling({"Belo Horizonte": 2}) == "Belo Horizonte"


def test_the_search_query_is_served_by_the_gin_index(gala):
    """With enough events for a sequential scan to cost more, the planner reads the index for
    the very query the catalogue runs (the search text a bound parameter)."""
    partner_id = gala["gala"].partner_id
    db.session.execute(
        sql(
            "INSERT INTO event (partner_id, name, venue, city, starts_at, currency, status,"
            " signing_key, public_key, allow_reentry, created_at, updated_at)"
            " SELECT :partner, 'Show ' || n, 'Arena', 'Curitiba', now() + interval '30 days',"
            " 'BRL', 'published', 'k' || n, 'p' || n, false, now(), now()"
            " FROM generate_series(1, 5000) n"
        ),
        {"partner": partner_id},
    )
    db.session.execute(sql("ANALYZE event"))
    db.session.commit()
    search = catalog.Search(text="orquestra sinfonica")
    found = catalog.search_query(search, utcnow())
    # What search_events runs: the count, and the page, earliest first.
    for query in (found, found.order_by(Event.starts_at, Event.id).limit(catalog.PAGE_SIZE)):
        plan = explain(query)
        assert "Index Scan on ix_event_search" in plan, plan
        assert "Seq Scan on event" not in plan, plan
    page = catalog.search_events(db.session, search)
    assert [e.id for e in page.events] == [gala["gala"].id] and page.total == 1


def _search_index() -> str:
    return db.session.scalar(
        sql("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_event_search'")
    )


def test_the_migration_goes_down_to_the_simple_index_and_up_again(app):
    from alembic.script import ScriptDirectory
    from flask_migrate import downgrade, upgrade

    # The revision below this one, whatever migrations are chained before it.
    scripts = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
    below = scripts.get_revision("13526b5f3cae").down_revision
    assert "to_tsvector('pt_unaccent'::regconfig" in _search_index()
    db.session.remove()  # no transaction of the test's may hold the event table
    try:
        downgrade(revision=below)
        assert "to_tsvector('simple'::regconfig" in _search_index()
        configs = db.session.scalar(
            sql("SELECT count(*) FROM pg_ts_config WHERE cfgname = 'pt_unaccent'")
        )
        assert configs == 0
    finally:
        db.session.remove()
        upgrade()
    assert "to_tsvector('pt_unaccent'::regconfig" in _search_index()
