"""webhooks: partners' endpoints, the outbox of deliveries, and ticket.checked_in written by a
trigger on checkin_entry

Revision ID: 223d938e86e9
Revises: b3f7a2d9c415
Create Date: 2026-12-07 01:23:59.578726

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '223d938e86e9'
down_revision = 'b3f7a2d9c415'
branch_labels = None
depends_on = None

# A ticket's first admission, written as a delivery to each active endpoint of the event's
# partner subscribed to ticket.checked_in, in the transaction that inserts the entry: every way
# an entry reaches the database (the database store, the write-through of a scan judged in
# Redis, the scan log's flush, an offline device's upload) inserts it into checkin_entry, whose
# key admits a ticket once. One statement per INSERT statement (its new rows as a transition
# table): a statement that inserts no entry, or a partner without such an endpoint, writes
# nothing. The payload's shape is app/services/webhooks/outbox.py's (ISO_UTC there too).
CHECKED_IN_FUNCTION = """
CREATE FUNCTION webhook_ticket_checked_in() RETURNS trigger AS $$
BEGIN
    INSERT INTO webhook_delivery (endpoint_id, partner_id, kind, key, payload, status, attempts,
                                  next_attempt_at, created_at)
    SELECT e.id, e.partner_id, 'ticket.checked_in', 'ticket.checked_in:ticket:' || taken.ticket_id,
           jsonb_build_object(
               'ticket_id', taken.ticket_id,
               'event_id', taken.event_id,
               'order_id', t.order_id,
               'gate', taken.first_gate,
               'checked_in_at', to_char(taken.first_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           ),
           'pending', 0, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
      FROM taken
      JOIN event ev ON ev.id = taken.event_id
      JOIN webhook_endpoint e
        ON e.partner_id = ev.partner_id AND e.active AND 'ticket.checked_in' = ANY (e.kinds)
      LEFT JOIN ticket t ON t.id = taken.ticket_id
     ORDER BY e.id, taken.first_at, taken.ticket_id
    ON CONFLICT (endpoint_id, key) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
CHECKED_IN_TRIGGER = """
CREATE TRIGGER checkin_entry_webhook
AFTER INSERT ON checkin_entry
REFERENCING NEW TABLE AS taken
FOR EACH STATEMENT EXECUTE FUNCTION webhook_ticket_checked_in()
"""


def upgrade():
    op.create_table('webhook_endpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('kinds', postgresql.ARRAY(sa.String(length=30)), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('previous_secret', sa.String(length=64), nullable=True),
    sa.Column('previous_secret_until', sa.DateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('secret_rotated_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("cardinality(kinds) > 0 AND kinds <@ ARRAY['order.paid', 'order.refunded', 'order.cancelled', 'ticket.transferred', 'ticket.checked_in', 'payout.paid']::varchar[]", name='ck_webhook_endpoint_kinds'),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_endpoint_partner_active', 'webhook_endpoint', ['partner_id'], unique=False, postgresql_where=sa.text('active'))

    op.create_table('webhook_delivery',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name='ck_webhook_delivery_status'),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoint.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('endpoint_id', 'key', name='uq_webhook_delivery_endpoint_key')
    )
    op.create_index('ix_webhook_delivery_due', 'webhook_delivery', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.create_index('ix_webhook_delivery_unfinished', 'webhook_delivery', ['endpoint_id', 'id'], unique=False, postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.create_index('ix_webhook_delivery_partner', 'webhook_delivery', ['partner_id', 'id'], unique=False)
    op.execute(CHECKED_IN_FUNCTION)
    op.execute(CHECKED_IN_TRIGGER)


def downgrade():
    op.execute("DROP TRIGGER checkin_entry_webhook ON checkin_entry")
    op.execute("DROP FUNCTION webhook_ticket_checked_in()")
    op.drop_index('ix_webhook_delivery_partner', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_unfinished', table_name='webhook_delivery', postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.drop_index('ix_webhook_delivery_due', table_name='webhook_delivery', postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.drop_table('webhook_delivery')
    op.drop_index('ix_webhook_endpoint_partner_active', table_name='webhook_endpoint', postgresql_where=sa.text('active'))
    op.drop_table('webhook_endpoint')
