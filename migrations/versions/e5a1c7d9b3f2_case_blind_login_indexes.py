"""logins and sign-ups find an account by its lower-cased name through an index: FAB looks a
login up as lower(username) = lower(:name) and a sign-up or a ticket transfer a customer as
lower(email) = :address, and each read the whole of ab_user or customer

Built CONCURRENTLY, outside the migration's transaction: both tables take sign-ups during an
on-sale. Not unique: older rows that differ only in case would stop the migration.

Revision ID: e5a1c7d9b3f2
Revises: c3f9a1d7e2b8
Create Date: 2026-12-07 21:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e5a1c7d9b3f2'
down_revision = 'c3f9a1d7e2b8'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_ab_user_username_lower', 'ab_user', 'username'),
    ('ix_customer_email_lower', 'customer', 'email'),
)


def upgrade():
    with op.get_context().autocommit_block():
        for name, table, column in INDEXES:
            op.create_index(
                name,
                table,
                [sa.text(f'lower({column})')],
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade():
    with op.get_context().autocommit_block():
        for name, table, _column in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
