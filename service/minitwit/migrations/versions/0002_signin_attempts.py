"""Failed sign-ins per account, counted in the database so every replica throttles alike.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "signin_attempt",
        sa.Column("attempt_id", sa.Integer(), primary_key=True),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("attempted_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_signin_attempt_bucket", "signin_attempt", ["bucket", "attempted_ms"])
    op.create_index("ix_signin_attempt_attempted_ms", "signin_attempt", ["attempted_ms"])


def downgrade():
    op.drop_index("ix_signin_attempt_attempted_ms", table_name="signin_attempt")
    op.drop_index("ix_signin_attempt_bucket", table_name="signin_attempt")
    op.drop_table("signin_attempt")
