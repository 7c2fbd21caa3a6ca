"""rules_versions: the content of every rules version when first used

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Placeholder revision, filled in by the rules-replay work (`mailbot rules show VERSION`).
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
