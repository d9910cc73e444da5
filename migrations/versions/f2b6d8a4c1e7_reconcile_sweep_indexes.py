"""the reconcile sweeps read the rows they are about, not every payment and order ever made:
the payments task (each minute) a partial index of pending payments and one of cancelled
orders (by cancel_reason, which only a cancellation writes, so that paying an order stays a
HOT update), with a check that a cancelled order names its reason; the settlement task (each
hour) and the money runs page a gateway's captures by time

Indexes built CONCURRENTLY, outside the migration's transaction: both tables take every sale.
The check is added NOT VALID (it holds for new rows at once) and validated apart, which reads
the table without stopping its writes.

Revision ID: f2b6d8a4c1e7
Revises: e5a1c7d9b3f2
Create Date: 2026-12-07 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2b6d8a4c1e7'
down_revision = 'e5a1c7d9b3f2'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_payment_pending', 'payment', ['created_at'], "status = 'pending'"),
    ('ix_order_cancelled', 'order', ['id'], 'cancel_reason IS NOT NULL'),
    ('ix_payment_gateway_captured', 'payment', ['gateway', 'captured_at'], 'captured_at IS NOT NULL'),
)


def upgrade():
    op.execute(
        'ALTER TABLE "order" ADD CONSTRAINT ck_order_cancel_reason '
        "CHECK (status <> 'cancelled' OR cancel_reason IS NOT NULL) NOT VALID"
    )
    with op.get_context().autocommit_block():
        # After the ADD's commit: in its transaction, the ADD's lock would stop every write
        # while the table is read.
        op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT ck_order_cancel_reason')
        for name, table, columns, predicate in INDEXES:
            op.create_index(
                name,
                table,
                columns,
                postgresql_where=sa.text(predicate) if predicate else None,
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade():
    with op.get_context().autocommit_block():
        for name, table, _columns, _predicate in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    op.drop_constraint('ck_order_cancel_reason', 'order', type_='check')
