"""event timezone: the venue's IANA time zone, in which its times are entered and shown

Existing events were entered as UTC; they keep their instants and are shown in São Paulo's time
from now on (the zone of every event so far).

Revision ID: 3b8f2d6e1a47
Revises: 7d3e9a1c5b20
Create Date: 2026-12-06 20:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3b8f2d6e1a47'
down_revision = '7d3e9a1c5b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'timezone', sa.String(length=64), nullable=False,
                server_default='America/Sao_Paulo',
            )
        )


def downgrade():
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('timezone')
