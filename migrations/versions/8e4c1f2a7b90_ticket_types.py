"""ticket types within a section (full, half price, courtesy, the partner's own): the type a hold
quoted on each spot, and the type of each ticket

Revision ID: 8e4c1f2a7b90
Revises: 3b8f2d6e1a47
Create Date: 2026-12-06 20:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8e4c1f2a7b90'
down_revision = '3b8f2d6e1a47'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ticket_type',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('section_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('price_cents', sa.Integer(), nullable=False),
        sa.Column('cap', sa.Integer(), nullable=True),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.CheckConstraint('cap IS NULL OR cap >= 0', name='ck_ticket_type_cap'),
        sa.CheckConstraint('price_cents >= 0', name='ck_ticket_type_price'),
        sa.CheckConstraint(
            "kind IN ('full', 'half', 'courtesy', 'other')", name='ck_ticket_type_kind'
        ),
        sa.ForeignKeyConstraint(['section_id'], ['event_section.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('section_id', 'name', name='uq_ticket_type_name'),
    )
    op.create_index('ix_ticket_type_section_id', 'ticket_type', ['section_id'])
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_ticket_type_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_event_spot_held_ticket_type_id', ['held_ticket_type_id'])
        batch_op.create_foreign_key(
            'event_spot_held_ticket_type_id_fkey', 'ticket_type', ['held_ticket_type_id'], ['id'],
            ondelete='SET NULL',
        )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ticket_type_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_ticket_ticket_type_id', ['ticket_type_id'])
        batch_op.create_foreign_key(
            'ticket_ticket_type_id_fkey', 'ticket_type', ['ticket_type_id'], ['id'],
            ondelete='RESTRICT',
        )


def downgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_constraint('ticket_ticket_type_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_ticket_ticket_type_id')
        batch_op.drop_column('ticket_type_id')
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.drop_constraint('event_spot_held_ticket_type_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_event_spot_held_ticket_type_id')
        batch_op.drop_column('held_ticket_type_id')
    op.drop_index('ix_ticket_type_section_id', table_name='ticket_type')
    op.drop_table('ticket_type')
