"""tasks the broker lost, sent again: when a report's task was last sent again, when a
cancelled event's refund task was last sent again and last seen running

Revision ID: 27bb0fd6c3a1
Revises: 5c1e9a7d3b28
Create Date: 2026-12-07 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '27bb0fd6c3a1'
down_revision = '5c1e9a7d3b28'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('report', sa.Column('sent_at', sa.DateTime(), nullable=True))
    op.add_column('event', sa.Column('refunds_sent_at', sa.DateTime(), nullable=True))
    op.add_column('event', sa.Column('refunds_seen_at', sa.DateTime(), nullable=True))


def downgrade():
    op.drop_column('event', 'refunds_seen_at')
    op.drop_column('event', 'refunds_sent_at')
    op.drop_column('report', 'sent_at')
