"""waiting list of sold-out events: waitlist_entry, the event's offer window, and the trigger that
ends an offered entry when its hold ends (paid: converted; expired or released: expired)

Revision ID: a7c3e9f1b2d4
Revises: 9a4c2e7b1d05
Create Date: 2026-12-08 10:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "a7c3e9f1b2d4"
down_revision = "9a4c2e7b1d05"
branch_labels = None
depends_on = None

# Every path that ends a hold (the sale's one statement, a release, the expiry sweep, a hold
# lost while paying) changes its status from 'active': the offered entry of that hold, if any,
# ends with it, in the same transaction. Fires only on that change (the WHEN clause), and then
# costs one probe of the entry's unique hold_id index.
OFFER_ENDED = """
CREATE FUNCTION waitlist_offer_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE waitlist_entry
       SET status = CASE WHEN NEW.status = 'converted' THEN 'converted' ELSE 'expired' END,
           ended_at = timezone('utc', clock_timestamp())
     WHERE hold_id = NEW.id AND status = 'offered';
    RETURN NULL;
END
$$;
CREATE TRIGGER hold_waitlist_offer_ended
    AFTER UPDATE OF status ON hold
    FOR EACH ROW
    WHEN (OLD.status = 'active' AND NEW.status <> 'active')
    EXECUTE FUNCTION waitlist_offer_ended();
"""


def upgrade():
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("waitlist_offer_minutes", sa.Integer(), server_default="60", nullable=False)
        )
        batch_op.create_check_constraint(
            "ck_event_waitlist_offer_minutes", "waitlist_offer_minutes BETWEEN 1 AND 10080"
        )
    op.create_table(
        "waitlist_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=True),
        sa.Column("ticket_type_id", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("offered_at", sa.DateTime(), nullable=True),
        sa.Column("offer_expires_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("hold_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("quantity >= 1", name="ck_waitlist_entry_quantity"),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'converted', 'expired', 'left')",
            name="ck_waitlist_entry_status",
        ),
        sa.CheckConstraint(
            "status NOT IN ('offered', 'converted') OR hold_id IS NOT NULL",
            name="ck_waitlist_entry_offer_has_hold",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_waitlist_entry_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event.id"],
            name=op.f("fk_waitlist_entry_event_id_event"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["hold.id"],
            name=op.f("fk_waitlist_entry_hold_id_hold"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["event_section.id"],
            name=op.f("fk_waitlist_entry_section_id_event_section"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_type_id"],
            ["ticket_type.id"],
            name=op.f("fk_waitlist_entry_ticket_type_id_ticket_type"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entry")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_waitlist_entry_hold_id")),
    )
    with op.batch_alter_table("waitlist_entry", schema=None) as batch_op:
        batch_op.create_index(
            "uq_waitlist_entry_open",
            ["event_id", "customer_id", "section_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('waiting', 'offered')"),
            postgresql_nulls_not_distinct=True,
        )
        batch_op.create_index(
            "ix_waitlist_entry_waiting",
            ["event_id", "section_id", "created_at"],
            unique=False,
            postgresql_where=sa.text("status = 'waiting'"),
        )
        batch_op.create_index(
            "ix_waitlist_entry_customer", ["customer_id", "event_id"], unique=False
        )
    op.execute(OFFER_ENDED)


def downgrade():
    op.execute("DROP TRIGGER hold_waitlist_offer_ended ON hold")
    op.execute("DROP FUNCTION waitlist_offer_ended()")
    with op.batch_alter_table("waitlist_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_waitlist_entry_customer")
        batch_op.drop_index("ix_waitlist_entry_waiting")
        batch_op.drop_index("uq_waitlist_entry_open")
    op.drop_table("waitlist_entry")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("ck_event_waitlist_offer_minutes", type_="check")
        batch_op.drop_column("waitlist_offer_minutes")
