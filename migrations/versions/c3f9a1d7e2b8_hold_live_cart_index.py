"""a customer's cart for an event (their live hold) found by a partial index of live holds by
customer and event: in the plan PostgreSQL keeps for the prepared statement of every hold
request, the cart was read through ix_hold_status_expires_at, every live hold of the on-sale

Built CONCURRENTLY, outside the migration's transaction: hold is written by every purchase,
and a plain CREATE INDEX would stop them while it scans the table.

Revision ID: c3f9a1d7e2b8
Revises: 5d2e8b7c4a19
Create Date: 2026-12-07 19:25:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3f9a1d7e2b8'
down_revision = '5d2e8b7c4a19'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_hold_live_cart',
            'hold',
            ['customer_id', 'event_id'],
            postgresql_where=sa.text("status = 'active'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index(
            'ix_hold_live_cart', table_name='hold', postgresql_concurrently=True, if_exists=True
        )
