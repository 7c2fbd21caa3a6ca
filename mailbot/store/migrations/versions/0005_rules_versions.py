"""rules_versions: the content of every rules version when first used

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Events and extractions store a rules version (a content hash); this table keeps the
files behind each version, written the first time an event records it, so
`mailbot rules show VERSION` answers "which rules decided this" after the files changed.
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rules_versions',
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('first_used_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('version', name=op.f('pk_rules_versions')),
    )


def downgrade() -> None:
    op.drop_table('rules_versions')
