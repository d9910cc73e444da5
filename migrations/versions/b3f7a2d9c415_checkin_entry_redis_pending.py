"""check-in entries the database store took while Redis was unreachable, until Redis is told

Revision ID: b3f7a2d9c415
Revises: 27bb0fd6c3a1
Create Date: 2026-12-07 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b3f7a2d9c415'
down_revision = '27bb0fd6c3a1'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('checkin_entry', sa.Column('redis_pending_at', sa.DateTime(), nullable=True))
    op.create_index(
        'ix_checkin_entry_redis_pending',
        'checkin_entry',
        ['redis_pending_at'],
        unique=False,
        postgresql_where=sa.text('redis_pending_at IS NOT NULL'),
    )


def downgrade():
    op.drop_index('ix_checkin_entry_redis_pending', table_name='checkin_entry')
    op.drop_column('checkin_entry', 'redis_pending_at')
