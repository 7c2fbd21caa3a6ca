"""case-insensitive email indexes on claims and rmas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Every queued reply asks "did a bounce flag this address?" with
`lower(email) = :address`; an index on the expression answers that without reading
every claim and RMA (the plain email index cannot serve lower()). SQLite (3.9+) and
PostgreSQL both index expressions.
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_claims_email_lower', 'claims', [sa.text('lower(email)')], unique=False)
    op.create_index('ix_rmas_email_lower', 'rmas', [sa.text('lower(email)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rmas_email_lower', table_name='rmas')
    op.drop_index('ix_claims_email_lower', table_name='claims')
