"""event waiting room: buyers let in per minute for a high-demand on-sale

Revision ID: a81f3c2d9e57
Revises: 5d2c7e1a9b40
Create Date: 2026-11-29 18:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a81f3c2d9e57'
down_revision = '5d2c7e1a9b40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_room_per_minute', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            'ck_event_waiting_room_rate',
            'waiting_room_per_minute IS NULL OR waiting_room_per_minute > 0',
        )
    op.create_table(
        'waiting_line',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('next_slot', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id'),
    )
    op.create_table(
        'waiting_entry',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('joined_at', sa.DateTime(), nullable=False),
        sa.Column('admit_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'customer_id'),
    )
    with op.batch_alter_table('waiting_entry', schema=None) as batch_op:
        batch_op.create_index('ix_waiting_entry_customer', ['customer_id'], unique=False)


def downgrade():
    op.drop_table('waiting_entry')
    op.drop_table('waiting_line')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_constraint('ck_event_waiting_room_rate', type_='check')
        batch_op.drop_column('waiting_room_per_minute')
