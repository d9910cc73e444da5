"""a held spot keeps the Idempotency-Key of the hold request that took it

Revision ID: 9a4c2e7b1d05
Revises: f6b1d3a8c972
Create Date: 2026-12-07 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9a4c2e7b1d05'
down_revision = 'f6b1d3a8c972'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('event_spot', sa.Column('held_request_key', sa.String(length=100), nullable=True))


def downgrade():
    op.drop_column('event_spot', 'held_request_key')
