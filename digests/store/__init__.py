"""Storage: SQLAlchemy models, the database handle, migrations and queries."""

from digests.store.db import Database, open_database

__all__ = ["Database", "open_database"]
