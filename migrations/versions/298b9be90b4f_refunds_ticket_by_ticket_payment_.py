"""refunds ticket by ticket: payment refunds with idempotency keys, matched by settlement lines

A payment records what went back to the card (refunded_cents) and each refund (payment_refund:
amount, the platform fee's share, the idempotency key that is also its ledger cause, its
ledger transaction); a ticket names the refund that gave its price back; a settlement refund
line names the refund of ours it matched; the simulated acquirer keeps each refund's key.
Refunds made before are recorded as one full refund each, linked to their tickets, ledger
transaction and settlement line.

Revision ID: 298b9be90b4f
Revises: 9b6c263e649b
Create Date: 2026-11-29 12:12:34.775962

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '298b9be90b4f'
down_revision = '9b6c263e649b'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payment_refund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('fee_share_cents', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('refunded_at', sa.DateTime(), nullable=True),
    sa.Column('ledger_transaction_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'done')", name='ck_payment_refund_status'),
    sa.CheckConstraint('amount_cents >= 0 AND fee_share_cents >= 0', name='ck_payment_refund_amounts'),
    sa.ForeignKeyConstraint(['ledger_transaction_id'], ['ledger_transaction.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key'),
    sa.UniqueConstraint('ledger_transaction_id')
    )
    with op.batch_alter_table('payment_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_refund_payment_id'), ['payment_id'], unique=False)

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('refunded_cents', sa.Integer(), nullable=False, server_default=sa.text('0'))
        )
        batch_op.create_check_constraint(
            'ck_payment_refunded', 'refunded_cents >= 0 AND refunded_cents <= amount_cents'
        )

    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_refund_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_settlement_line_payment_refund_id', ['payment_refund_id'])
        batch_op.create_foreign_key('fk_settlement_line_payment_refund_id', 'payment_refund', ['payment_refund_id'], ['id'], ondelete='RESTRICT')

    with op.batch_alter_table('sim_acquirer_refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint('uq_sim_acquirer_refund_idempotency_key', ['idempotency_key'])

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refund_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ticket_refund_id'), ['refund_id'], unique=False)
        batch_op.create_foreign_key('fk_ticket_refund_id', 'payment_refund', ['refund_id'], ['id'], ondelete='RESTRICT')

    # Refunds made before: each was a whole payment at once, under the key full refunds have.
    op.execute("UPDATE payment SET refunded_cents = amount_cents WHERE status = 'refunded'")
    op.execute(
        "INSERT INTO payment_refund (payment_id, idempotency_key, status, amount_cents,"
        " fee_share_cents, created_at, refunded_at, ledger_transaction_id) "
        "SELECT p.id, 'refund:payment:' || p.id, 'done', p.amount_cents, p.fee_cents,"
        " COALESCE(p.refunded_at, p.created_at), COALESCE(p.refunded_at, p.created_at),"
        " (SELECT t.id FROM ledger_transaction t WHERE t.cause_key = 'refund:payment:' || p.id) "
        "FROM payment p WHERE p.status = 'refunded'"
    )
    op.execute(
        "UPDATE ticket SET refund_id = (SELECT r.id FROM payment_refund r"
        " JOIN payment p ON p.id = r.payment_id WHERE p.order_id = ticket.order_id"
        " ORDER BY r.id LIMIT 1) "
        "WHERE status = 'revoked' AND order_id IN"
        " (SELECT order_id FROM payment WHERE status = 'refunded')"
    )
    op.execute(
        "UPDATE settlement_line SET payment_refund_id = (SELECT r.id FROM payment_refund r"
        " WHERE r.payment_id = settlement_line.payment_id) "
        "WHERE kind = 'refund' AND payment_id IS NOT NULL"
    )


def downgrade():
    # A partial refund has no place in the older schema: only its payment's status remains.
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_constraint('fk_ticket_refund_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ticket_refund_id'))
        batch_op.drop_column('refund_id')

    with op.batch_alter_table('sim_acquirer_refund', schema=None) as batch_op:
        batch_op.drop_constraint('uq_sim_acquirer_refund_idempotency_key', type_='unique')
        batch_op.drop_column('idempotency_key')

    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.drop_constraint('fk_settlement_line_payment_refund_id', type_='foreignkey')
        batch_op.drop_constraint('uq_settlement_line_payment_refund_id', type_='unique')
        batch_op.drop_column('payment_refund_id')

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint('ck_payment_refunded', type_='check')
        batch_op.drop_column('refunded_cents')

    with op.batch_alter_table('payment_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_refund_payment_id'))

    op.drop_table('payment_refund')
