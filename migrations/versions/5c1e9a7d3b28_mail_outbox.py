"""e-mail: the outbox, password-reset links, a customer's confirmed address, a partner's daily
summary opt-out

Revision ID: 5c1e9a7d3b28
Revises: e2a7c41b9d03
Create Date: 2026-12-06 22:40:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '5c1e9a7d3b28'
down_revision = 'e2a7c41b9d03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mail_outbox',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('to_address', sa.String(length=320), nullable=False),
        sa.Column('locale', sa.String(length=8), nullable=False),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('subject', sa.String(length=300), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'pending', 'sending', 'sent', 'failed', 'dropped')",
            name='ck_mail_outbox_status',
        ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index('ix_mail_outbox_kind', 'mail_outbox', ['kind'])
    op.create_index(
        'ix_mail_outbox_due', 'mail_outbox', ['next_attempt_at'],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_index(
        'ix_mail_outbox_held_to', 'mail_outbox', ['to_address'],
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_table(
        'password_reset',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('voided_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_password_reset_user_id', 'password_reset', ['user_id'])
    op.add_column('customer', sa.Column('email_confirmed_at', sa.DateTime(), nullable=True))
    # Customers who bought before addresses were confirmed keep receiving their mails.
    op.execute("UPDATE customer SET email_confirmed_at = created_at")
    op.add_column(
        'partner',
        sa.Column('daily_summary', sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade():
    op.drop_column('partner', 'daily_summary')
    op.drop_column('customer', 'email_confirmed_at')
    op.drop_index('ix_password_reset_user_id', table_name='password_reset')
    op.drop_table('password_reset')
    op.drop_index('ix_mail_outbox_held_to', table_name='mail_outbox')
    op.drop_index('ix_mail_outbox_due', table_name='mail_outbox')
    op.drop_index('ix_mail_outbox_kind', table_name='mail_outbox')
    op.drop_table('mail_outbox')
