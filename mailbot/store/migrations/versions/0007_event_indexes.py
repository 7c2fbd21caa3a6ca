"""events: indexes on message_id and kind

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

The desk's queue asks which ledger mails a person already attached or dismissed
(events of a few kinds naming a message); without these it scans every event.
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_events_message_id'), 'events', ['message_id'], unique=False)
    op.create_index(op.f('ix_events_kind'), 'events', ['kind'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_events_kind'), table_name='events')
    op.drop_index(op.f('ix_events_message_id'), table_name='events')
