"""user locale: the language a signed-in user picked with the switcher, kept across sessions

Revision ID: e2a7c41b9d03
Revises: 2f6d8a1c4e73
Create Date: 2026-12-06 20:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2a7c41b9d03'
down_revision = '2f6d8a1c4e73'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.drop_column('locale')
