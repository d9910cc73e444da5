"""named tickets and transfers: an event's rules (named_tickets, transfers_allowed,
transfers_until_hours), a ticket's owner when transferred and its successor, the status
transferred

Revision ID: f6b1d3a8c972
Revises: 223d938e86e9
Create Date: 2026-12-07 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f6b1d3a8c972'
down_revision = '223d938e86e9'
branch_labels = None
depends_on = None

OLD_STATUSES = "'pending', 'valid', 'revoked', 'void'"
NEW_STATUSES = "'pending', 'valid', 'revoked', 'void', 'transferred'"


def upgrade():
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('named_tickets', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('transfers_allowed', sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('transfers_until_hours', sa.Integer(), server_default='2', nullable=False)
        )
        batch_op.create_check_constraint(
            'ck_event_transfers_until', 'transfers_until_hours >= 0'
        )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ticket_owner_id'), ['owner_id'], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f('uq_ticket_replaced_by_id'), ['replaced_by_id']
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_ticket_owner_id_customer'), 'customer', ['owner_id'], ['id'],
            ondelete='RESTRICT',
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_ticket_replaced_by_id_ticket'), 'ticket', ['replaced_by_id'], ['id'],
            ondelete='SET NULL',
        )
        batch_op.drop_constraint('ck_ticket_status', type_='check')
        batch_op.create_check_constraint('ck_ticket_status', f"status IN ({NEW_STATUSES})")


def downgrade():
    # A transferred ticket's code no longer admits anyone: before transfers it was a revoked one.
    op.execute("UPDATE ticket SET status = 'revoked' WHERE status = 'transferred'")
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_constraint('ck_ticket_status', type_='check')
        batch_op.create_check_constraint('ck_ticket_status', f"status IN ({OLD_STATUSES})")
        batch_op.drop_constraint(batch_op.f('fk_ticket_replaced_by_id_ticket'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_ticket_owner_id_customer'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_ticket_replaced_by_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_ticket_owner_id'))
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('owner_id')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_constraint('ck_event_transfers_until', type_='check')
        batch_op.drop_column('transfers_until_hours')
        batch_op.drop_column('transfers_allowed')
        batch_op.drop_column('named_tickets')
