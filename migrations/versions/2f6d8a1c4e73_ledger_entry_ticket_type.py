"""ledger entries by ticket type: a sale's and a refund's fee and partner lines name the type
of the tickets they are for, so statements split by type (older entries have none)

Revision ID: 2f6d8a1c4e73
Revises: 13526b5f3cae
Create Date: 2026-12-06 20:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2f6d8a1c4e73'
down_revision = '13526b5f3cae'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ticket_type_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_ledger_entry_ticket_type_id', ['ticket_type_id'])
        batch_op.create_foreign_key(
            'ledger_entry_ticket_type_id_fkey', 'ticket_type', ['ticket_type_id'], ['id'],
            ondelete='RESTRICT',
        )


def downgrade():
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_constraint('ledger_entry_ticket_type_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_ledger_entry_ticket_type_id')
        batch_op.drop_column('ticket_type_id')
