"""outbox: the sender holding a row, when its attempt went out, possible duplicates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

The sender marks a row `sending` just before handing it to the relay and records
who holds the lease (`claimed_by`), so a row whose outcome is unknown (connection
lost after the message was sent, a sender killed mid-delivery) is flagged instead
of being sent again, and an update from a sender that lost its lease changes
nothing. `possible_duplicate` records that a reply was resent after such a doubt.
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: both SQLite and PostgreSQL do it in place, no table copy
    op.add_column('outbox', sa.Column('claimed_by', sa.String(length=40), nullable=True))
    op.add_column('outbox', sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        'outbox',
        sa.Column('possible_duplicate', sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('possible_duplicate')
        batch_op.drop_column('attempted_at')
        batch_op.drop_column('claimed_by')
