"""promo codes: a partner's codes (percent off, amount off or fixed price, for an event or all,
a section, a ticket type), the code and discount a hold quoted on each spot and a ticket was
bought with, a sale's discount line in the ledger, hidden (presale) sections and ticket types

Revision ID: 20bdfa2fba6b
Revises: a7c3e9f1b2d4
Create Date: 2026-12-07 03:56:49.401720

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '20bdfa2fba6b'
down_revision = 'a7c3e9f1b2d4'
branch_labels = None
depends_on = None

INDEXED = ('batch', 'event_id', 'partner_id', 'section_id', 'ticket_type_id')


def upgrade():
    op.create_table(
        'promo_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('section_id', sa.Integer(), nullable=True),
        sa.Column('ticket_type_id', sa.Integer(), nullable=True),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('value', sa.Integer(), nullable=False),
        sa.Column('valid_from', sa.DateTime(), nullable=True),
        sa.Column('valid_until', sa.DateTime(), nullable=True),
        sa.Column('max_uses', sa.Integer(), nullable=True),
        sa.Column('max_uses_per_customer', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('batch', sa.String(length=20), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind <> 'percent' OR value < 100", name='ck_promo_code_percent'),
        sa.CheckConstraint(
            "kind IN ('percent', 'amount_off', 'fixed_price')", name='ck_promo_code_kind'
        ),
        sa.CheckConstraint('code = upper(code)', name='ck_promo_code_upper'),
        sa.CheckConstraint('max_uses IS NULL OR max_uses >= 0', name='ck_promo_code_max_uses'),
        sa.CheckConstraint(
            'max_uses_per_customer IS NULL OR max_uses_per_customer >= 1',
            name='ck_promo_code_max_per_customer',
        ),
        sa.CheckConstraint('value > 0', name='ck_promo_code_value'),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['section_id'], ['event_section.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_type_id'], ['ticket_type.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'code', name='uq_promo_code_partner_code'),
    )
    for column in INDEXED:
        op.create_index(f'ix_promo_code_{column}', 'promo_code', [column])
    for table in ('event_section', 'ticket_type'):
        op.add_column(
            table, sa.Column('hidden', sa.Boolean(), server_default='false', nullable=False)
        )
    op.add_column('event_spot', sa.Column('held_promo_code_id', sa.Integer(), nullable=True))
    op.add_column('event_spot', sa.Column('held_discount_cents', sa.Integer(), nullable=True))
    op.create_index('ix_event_spot_held_promo_code_id', 'event_spot', ['held_promo_code_id'])
    op.create_foreign_key(
        'event_spot_held_promo_code_id_fkey', 'event_spot', 'promo_code',
        ['held_promo_code_id'], ['id'], ondelete='SET NULL',
    )
    op.create_check_constraint(
        'ck_event_spot_held_discount', 'event_spot', 'held_discount_cents >= 0'
    )
    op.add_column('ticket', sa.Column('promo_code_id', sa.Integer(), nullable=True))
    op.add_column(
        'ticket',
        sa.Column('discount_cents', sa.Integer(), server_default='0', nullable=False),
    )
    op.create_index('ix_ticket_promo_code_id', 'ticket', ['promo_code_id'])
    op.create_foreign_key(
        'ticket_promo_code_id_fkey', 'ticket', 'promo_code', ['promo_code_id'], ['id'],
        ondelete='RESTRICT',
    )
    op.create_check_constraint('ck_ticket_discount', 'ticket', 'discount_cents >= 0')
    op.add_column('ledger_entry', sa.Column('promo_code_id', sa.Integer(), nullable=True))
    op.create_index('ix_ledger_entry_promo_code_id', 'ledger_entry', ['promo_code_id'])
    op.create_foreign_key(
        'ledger_entry_promo_code_id_fkey', 'ledger_entry', 'promo_code', ['promo_code_id'],
        ['id'], ondelete='RESTRICT',
    )


def downgrade():
    op.drop_constraint('ledger_entry_promo_code_id_fkey', 'ledger_entry', type_='foreignkey')
    op.drop_index('ix_ledger_entry_promo_code_id', table_name='ledger_entry')
    op.drop_column('ledger_entry', 'promo_code_id')
    op.drop_constraint('ck_ticket_discount', 'ticket', type_='check')
    op.drop_constraint('ticket_promo_code_id_fkey', 'ticket', type_='foreignkey')
    op.drop_index('ix_ticket_promo_code_id', table_name='ticket')
    op.drop_column('ticket', 'discount_cents')
    op.drop_column('ticket', 'promo_code_id')
    op.drop_constraint('ck_event_spot_held_discount', 'event_spot', type_='check')
    op.drop_constraint('event_spot_held_promo_code_id_fkey', 'event_spot', type_='foreignkey')
    op.drop_index('ix_event_spot_held_promo_code_id', table_name='event_spot')
    op.drop_column('event_spot', 'held_discount_cents')
    op.drop_column('event_spot', 'held_promo_code_id')
    for table in ('ticket_type', 'event_section'):
        op.drop_column(table, 'hidden')
    for column in INDEXED:
        op.drop_index(f'ix_promo_code_{column}', table_name='promo_code')
    op.drop_table('promo_code')
