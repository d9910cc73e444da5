"""spot held price: the price a hold quoted for each of its spots, charged at checkout

Holds placed before this revision quote their section's price as it is now.

Revision ID: 7c3e51a0d9f4
Revises: 494965c4b9ee
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c3e51a0d9f4'
down_revision = '494965c4b9ee'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_price_cents', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE event_spot SET held_price_cents = event_section.price_cents"
        " FROM event_section"
        " WHERE event_section.id = event_spot.section_id AND event_spot.status = 'held'"
    )
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'ck_event_spot_held_price',
            "(status = 'held') = (held_price_cents IS NOT NULL) AND held_price_cents >= 0",
        )


def downgrade():
    with op.batch_alter_table('event_spot', schema=None) as batch_op:
        batch_op.drop_constraint('ck_event_spot_held_price', type_='check')
        batch_op.drop_column('held_price_cents')
