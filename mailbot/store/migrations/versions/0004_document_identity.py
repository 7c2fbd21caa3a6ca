"""documents: the receipt's identity key (receipt number and date as read)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Duplicate receipts are recognised by what they say (seller, receipt number, date);
the key is indexed so the fraud check finds every earlier claim holding the same
receipt, not only the most recent ones. Documents stored before this revision keep
NULL: their claims are still compared among the recent candidates.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('documents', sa.Column('receipt_key', sa.String(length=80), nullable=True))
    op.create_index(op.f('ix_documents_receipt_key'), 'documents', ['receipt_key'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_documents_receipt_key'), table_name='documents')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_column('receipt_key')
