"""outbox_subscriptions, outbox_messages and rate_windows

The persisted webhook outbox (:mod:`stemhub.outbox`) and the fixed-window request
counters of :mod:`stemhub.rate_windows`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("fail_count", sa.Integer, nullable=False),
        sa.Column("failing_since", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_called_at", sa.Float, nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_outbox_subscriptions_owner", "outbox_subscriptions", ["owner"])
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
        sa.Column("subscription_id", sa.String(40), nullable=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("deliver_until", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
    )
    op.create_index("ix_outbox_messages_subscription_id", "outbox_messages", ["subscription_id"])
    op.create_index(
        "ix_outbox_messages_status_next", "outbox_messages", ["status", "next_attempt_at"]
    )
    op.create_table(
        "rate_windows",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("window", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_table("outbox_messages")
    op.drop_table("outbox_subscriptions")
