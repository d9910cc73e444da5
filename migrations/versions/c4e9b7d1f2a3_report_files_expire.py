"""report files expire: a report whose file was deleted after REPORT_RETENTION_DAYS

Revision ID: c4e9b7d1f2a3
Revises: a81f3c2d9e57
Create Date: 2026-11-29 19:55:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e9b7d1f2a3'
down_revision = 'a81f3c2d9e57'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.drop_constraint('ck_report_status', type_='check')
        batch_op.create_check_constraint(
            'ck_report_status', "status IN ('pending', 'running', 'done', 'failed', 'expired')"
        )


def downgrade():
    op.execute("UPDATE report SET status = 'failed' WHERE status = 'expired'")
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.drop_constraint('ck_report_status', type_='check')
        batch_op.create_check_constraint(
            'ck_report_status', "status IN ('pending', 'running', 'done', 'failed')"
        )
