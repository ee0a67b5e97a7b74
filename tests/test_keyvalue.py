"""Counters and marks in the kv table written by several workers at once: none lost, none refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from digests.store import open_database
from digests.store.db import Database
from digests.store.edits import read_mark, write_mark
from digests.store.posts import bump_counter, read_counter

WORKERS = 6


def all_at_once(db: Database, work: Callable[[Database, int], None]) -> list[BaseException]:
    """work(database, n) in WORKERS threads, each with its own engine, started together; what they raised."""
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []
    engines = [open_database(db.url) for _ in range(WORKERS)]

    def run(n: int) -> None:
        barrier.wait()
        try:
            work(engines[n], n)
        except BaseException as exc:  # noqa: BLE001 -- the test reports whatever a worker raised
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    return errors


def test_429s_counted_by_workers_at_once_are_all_counted(db: Database) -> None:
    for _ in range(3):  # the first round creates the row, the others add to it
        assert all_at_once(db, lambda worker, n: bump_counter(worker, "flood_waits")) == []
    with db.session() as session:
        assert read_counter(session, "flood_waits") == 3 * WORKERS


def test_two_drains_writing_the_corrections_mark_at_once_both_succeed(db: Database) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)

    def mark(worker: Database, n: int) -> None:
        with worker.session() as session:
            write_mark(session, start + timedelta(seconds=n))

    assert all_at_once(db, mark) == []
    with db.session() as session:
        stored = read_mark(session)
    assert stored is not None and start <= stored.replace(tzinfo=UTC) < start + timedelta(seconds=WORKERS)
