"""an index on the Idempotency-Key a held spot keeps, so that a hold request asked again finds
the cart it made with one probe (before, every held spot of the event was read), also from the
shop's sold-out fast path

Built CONCURRENTLY, outside the migration's transaction: event_spot is the on-sale's hottest
table, and a plain CREATE INDEX would stop every hold and sale while it scans it.

Revision ID: 5d2e8b7c4a19
Revises: 20bdfa2fba6b
Create Date: 2026-12-07 07:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d2e8b7c4a19'
down_revision = '20bdfa2fba6b'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_event_spot_held_request_key',
            'event_spot',
            ['held_request_key'],
            postgresql_where=sa.text('held_request_key IS NOT NULL'),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index(
            'ix_event_spot_held_request_key',
            table_name='event_spot',
            postgresql_concurrently=True,
            if_exists=True,
        )
