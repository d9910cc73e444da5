"""audit_entry: the staff audit log (who changed what, before and after)

Revision ID: a7d3e5f1c902
Revises: 7c3e51a0d9f4
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'a7d3e5f1c902'
down_revision = '7c3e51a0d9f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_entry',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=200), nullable=False),
        sa.Column('actor_roles', sa.String(length=200), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('partner_id', sa.Integer(), nullable=True),
        sa.Column('object_type', sa.String(length=40), nullable=False),
        sa.Column('object_id', sa.Integer(), nullable=True),
        sa.Column('object_label', sa.String(length=200), nullable=True),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_actor_id', ['actor_id'], unique=False)
        batch_op.create_index('ix_audit_entry_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entry_object', ['object_type', 'object_id'], unique=False)
        batch_op.create_index('ix_audit_entry_partner_at', ['partner_id', 'at'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_partner_at')
        batch_op.drop_index('ix_audit_entry_object')
        batch_op.drop_index('ix_audit_entry_at')
        batch_op.drop_index('ix_audit_entry_actor_id')
    op.drop_table('audit_entry')
