"""event full-text search index (PostgreSQL)

Revision ID: 6c96cf349edc
Revises: 4c23ac9081dd
Create Date: 2026-11-29 09:34:28.256720

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '6c96cf349edc'
down_revision = '4c23ac9081dd'
branch_labels = None
depends_on = None


# The same expression as app.services.catalog.search_document(); PostgreSQL only (the
# SQLite fallback searches with LIKE). Alembic does not reflect expression indexes, so
# autogenerate leaves it alone.
SEARCH_DOCUMENT = (
    "to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(description, '') || ' ' "
    "|| coalesce(venue, '') || ' ' || coalesce(city, ''))"
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_event_search ON event USING gin ({SEARCH_DOCUMENT})")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_event_search")
