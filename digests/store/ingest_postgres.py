"""PostgreSQL's fast path for a batch of new documents: ids taken from the sequences up front, rows
sent through COPY, and the dedupe lookup as one query.

``INSERT ... RETURNING`` through SQLAlchemy costs SQLAlchemy's per-row parameter handling and the
server's per-row statement execution; COPY streams the rows in one statement, with psycopg's C
code formatting them. The values are SQLAlchemy's own bind processors' output for each column
(JSON text, UTC datetimes), so a row is stored exactly as the ORM and the row path store it.
Everything runs on the session's own connection, inside its transaction: a batch still commits
whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Table
from sqlalchemy.orm import Session

# What the driver raises when the server refuses a COPY (a duplicate key, a value too long).
DRIVER_ERRORS = psycopg.Error


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session, in the session's transaction."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection)
    return connection


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """count ids from the table's id sequence, in one round trip, ascending (as the rows' own
    defaults would take them, one by one, in the order of the rows)."""
    if count == 0:
        return []
    rows = driver_connection(session).execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, count)
    ).fetchall()
    return sorted(row[0] for row in rows)


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows (tuples in the order of columns) into table."""
    names = ", ".join(f'"{name}"' for name in columns)
    with driver_connection(session).cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def insert_with_ids(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows (dicts with the same keys) with ids from the table's sequence; their ids, in order.

    Each value goes through SQLAlchemy's bind processor for its column, as on the row path.
    """
    dialect = session.connection().dialect
    names = list(rows[0])
    processors = [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]
    ids = allocate_ids(session, table.name, len(rows))
    copy_rows(session, table.name, ["id", *names], (
        (row_id, *[process(row[name]) if process else row[name] for name, process in processors])
        for row_id, row in zip(ids, rows, strict=True)
    ))
    return ids


def items_by_fingerprint(session: Session, fingerprints: list[str]) -> list[tuple[int, str, bool]]:
    """(id, fingerprint, removed) of the stored items with these fingerprints, in one query."""
    if not fingerprints:
        return []
    return [
        (row[0], row[1], row[2])
        for row in driver_connection(session).execute(
            "SELECT id, fingerprint, removed FROM items WHERE fingerprint = ANY(%s)", (fingerprints,)
        )
    ]
