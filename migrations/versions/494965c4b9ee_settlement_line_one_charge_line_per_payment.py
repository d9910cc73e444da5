"""settlement: a payment is settled by one charge line (a partial unique index)

Revision ID: 494965c4b9ee
Revises: c4e9b7d1f2a3
Create Date: 2026-11-29 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '494965c4b9ee'
down_revision = 'c4e9b7d1f2a3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.create_index(
            'uq_settlement_line_charge_payment',
            ['payment_id'],
            unique=True,
            sqlite_where=sa.text("kind = 'charge'"),
            postgresql_where=sa.text("kind = 'charge'"),
        )


def downgrade():
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.drop_index('uq_settlement_line_charge_payment')
