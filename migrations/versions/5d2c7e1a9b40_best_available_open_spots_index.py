"""best-available reads a section's open spots in seat order: a partial index without sold ones

Revision ID: 5d2c7e1a9b40
Revises: 065bc6fb0a4a
Create Date: 2026-11-29 15:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d2c7e1a9b40'
down_revision = '065bc6fb0a4a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.create_index(
            'ix_event_spot_open_position',
            ['section_id', 'position'],
            unique=False,
            postgresql_where=sa.text("status IN ('available', 'held')"),
            sqlite_where=sa.text("status IN ('available', 'held')"),
        )


def downgrade():
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.drop_index('ix_event_spot_open_position')
