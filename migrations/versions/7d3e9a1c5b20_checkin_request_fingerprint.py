"""checkin: the request fingerprint of each scan, so a nonce sent again with another scan is refused

Revision ID: 7d3e9a1c5b20
Revises: 5e1b7a2c9d40
Create Date: 2026-12-01 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7d3e9a1c5b20'
down_revision = '5e1b7a2c9d40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_fingerprint', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.drop_column('request_fingerprint')
