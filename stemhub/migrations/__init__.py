"""Alembic migrations, run programmatically on the hub's own connection.

``Store.migrate()`` calls :func:`upgrade` inside ``run_sync``; nobody needs an
``alembic.ini``. SQLite runs in batch mode so column changes work there too.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

HERE = Path(__file__).parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


__all__ = ["alembic_config", "downgrade", "upgrade"]
