"""partner payout reserve: a percentage of the settled net of the last 30 days held back

Revision ID: 7d41c0a9e2b5
Revises: a7d3e5f1c902
Create Date: 2026-12-06 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7d41c0a9e2b5'
down_revision = 'a7d3e5f1c902'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('partner', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'reserve_percent',
                sa.Numeric(precision=5, scale=2),
                nullable=False,
                server_default='0',
            )
        )
        batch_op.create_check_constraint(
            'ck_partner_reserve_percent', 'reserve_percent >= 0 AND reserve_percent <= 100'
        )


def downgrade():
    with op.batch_alter_table('partner', schema=None) as batch_op:
        batch_op.drop_constraint('ck_partner_reserve_percent', type_='check')
        batch_op.drop_column('reserve_percent')
