"""The kv table's writes, safe when two workers (or two threads of one) write the same key at once.

A read-then-insert lets two transactions both see no row and both insert it: the second fails
on the primary key (seen under load as a UNIQUE error from the drain's corrections mark). An
upsert cannot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from digests.store.models import KeyValue


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def put(session: Session, key: str, value: dict[str, Any]) -> None:
    """Set the key's value, whether or not the row exists."""
    stmt = _insert(session)(KeyValue).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value}))
    session.expire_all()  # a KeyValue loaded before now shows the stored value when read again


def add_count(session: Session, key: str, amount: int) -> int:
    """Add to the key's {"count": n}, created at 0 first; the new count. Holds the row to the transaction's end."""
    session.execute(_insert(session)(KeyValue).values(key=key, value={"count": 0})
                    .on_conflict_do_nothing(index_elements=["key"]))
    stmt = select(KeyValue.value).where(KeyValue.key == key)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()  # SQLite: the insert above already holds the write lock
    current = session.scalar(stmt) or {}
    count = int(current.get("count", 0)) + amount
    put(session, key, {"count": count})
    return count
