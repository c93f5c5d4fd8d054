"""Alembic environment: the target is every table the domain modules own."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from incident.db import _import_models

_import_models()
config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
