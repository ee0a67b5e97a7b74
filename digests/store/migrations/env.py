"""Alembic environment: runs on the connection handed over by digests.store.db."""

from __future__ import annotations

from alembic import context

from digests.store.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` run by hand with sqlalchemy.url set in the ini
    from sqlalchemy import engine_from_config, pool

    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    connection = engine.connect()



def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Autogenerate leaves alone the search tables that migration 0002 makes by hand (and FTS5's own)."""
    return not (type_ == "table" and reflected and compare_to is None and name.startswith("search_"))


context.configure(
    connection=connection,
    include_object=include_object,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
