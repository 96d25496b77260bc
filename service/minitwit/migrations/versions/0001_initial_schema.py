"""The MiniTwit schema: users, follows, messages and the simulator's latest value.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user",
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("pw_hash", sa.String(255), nullable=False),
        sa.UniqueConstraint("username", name="uq_user_username"),
    )
    op.create_table(
        "follower",
        sa.Column("who_id", sa.Integer(), sa.ForeignKey("user.user_id", ondelete="CASCADE"), nullable=False),
        sa.Column("whom_id", sa.Integer(), sa.ForeignKey("user.user_id", ondelete="CASCADE"), nullable=False),
        sa.PrimaryKeyConstraint("who_id", "whom_id", name="pk_follower"),
    )
    op.create_index("ix_follower_whom_id", "follower", ["whom_id"])
    op.create_table(
        "message",
        sa.Column("message_id", sa.Integer(), primary_key=True),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("user.user_id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pub_date", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_message_author_id_pub_date", "message", ["author_id", "pub_date", "message_id"])
    op.create_index(
        "ix_message_public",
        "message",
        ["pub_date", "message_id"],
        postgresql_where=sa.text("flagged = 0"),
        sqlite_where=sa.text("flagged = 0"),
    )
    op.create_table(
        "latest",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )


def downgrade():
    op.drop_table("latest")
    op.drop_index("ix_message_public", table_name="message")
    op.drop_index("ix_message_author_id_pub_date", table_name="message")
    op.drop_table("message")
    op.drop_index("ix_follower_whom_id", table_name="follower")
    op.drop_table("follower")
    op.drop_table("user")
