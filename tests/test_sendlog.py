"""The send windows every worker shares (digests.store.sendlog), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from digests.store import open_database, sendlog
from digests.store.db import Database
from digests.store.sendlog import Full, Windows

BOT = "bot-a"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
WINDOWS = Windows(chat_rate=3, overall_rate=5, in_flight_for=timedelta(seconds=30))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_chat_takes_its_rate_in_a_minute_then_waits_for_the_oldest_to_age_out(db: Database) -> None:
    ids = []
    for k in range(3):
        got = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(k * 2))
        assert isinstance(got, int)
        sendlog.finish(db, got, WINDOWS, now=at(k * 2 + 0.5))
        ids.append(got)
    assert len(set(ids)) == 3
    full = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(10))
    # The first was answered at 0.5 s: it counts until 60.5 s.
    assert full == Full(chat_wait=pytest.approx(50.5), overall_wait=0.0)
    assert isinstance(sendlog.reserve(db, BOT, "-200", WINDOWS, now=at(10)), int)  # another chat has room
    assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(60.5)), int)
    assert isinstance(sendlog.reserve(db, "bot-b", "-100", WINDOWS, now=at(10)), int)  # another bot too


def test_the_global_window_counts_every_chat_and_the_replies(db: Database) -> None:
    for k in range(4):
        assert isinstance(sendlog.reserve(db, BOT, f"-{k}", WINDOWS, now=at(0.1 * k)), int)
    reply = sendlog.reserve(db, BOT, None, WINDOWS, now=at(0.5))  # counted in the global window only
    assert isinstance(reply, int)
    sendlog.finish(db, reply, WINDOWS, now=at(0.6))
    full = sendlog.reserve(db, BOT, "-9", WINDOWS, now=at(0.7))
    # Four still in flight, the reply answered at 0.6 s: room again at 1.6 s.
    assert full == Full(chat_wait=0.0, overall_wait=pytest.approx(0.9))
    assert isinstance(sendlog.reserve(db, BOT, "-9", WINDOWS, now=at(1.6)), int)
    assert sendlog.counting(db, BOT, now=at(1.6)) == 5
    assert sendlog.counting(db, BOT, "-9", now=at(1.6)) == 1


def test_a_request_counts_while_in_flight_and_a_window_after_its_answer(db: Database) -> None:
    slow = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(0))
    assert isinstance(slow, int)
    for k in (1, 2):
        got = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(k))
        assert isinstance(got, int)
        sendlog.finish(db, got, WINDOWS, now=at(k))
    # At 61 s the two answered ones count no more, the unanswered first one still does.
    assert sendlog.counting(db, BOT, "-100", now=at(62.5)) == 1
    sendlog.finish(db, slow, WINDOWS, now=at(25))  # answered late: counts until 85 s
    assert sendlog.counting(db, BOT, "-100", now=at(84)) == 1
    assert sendlog.counting(db, BOT, "-100", now=at(85)) == 0


def test_a_dead_workers_reservation_stops_counting_after_its_bound(db: Database) -> None:
    for k in range(3):
        assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(k)), int)  # never finished
    full = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(5))
    assert isinstance(full, Full) and 0 < full.chat_wait <= 3  # they are in flight: look again soon
    # in_flight_for (30 s) plus the chat's window (60 s) after it was made, the first counts no more.
    assert sendlog.counting(db, BOT, "-100", now=at(89.9)) == 3
    assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(90)), int)


def test_a_cancelled_reservation_frees_its_room(db: Database) -> None:
    ids = [sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(k)) for k in range(3)]
    assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(4)), Full)
    assert isinstance(ids[1], int)
    sendlog.cancel(db, ids[1])
    assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(4)), int)


def test_prune_deletes_only_what_counts_no_more(db: Database) -> None:
    done = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(0))
    assert isinstance(done, int)
    sendlog.finish(db, done, WINDOWS, now=at(1))
    reply = sendlog.reserve(db, BOT, None, WINDOWS, now=at(0))
    assert isinstance(reply, int)
    sendlog.finish(db, reply, WINDOWS, now=at(1))
    assert isinstance(sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(50)), int)  # in flight
    assert sendlog.prune(db, now=at(30)) == 1  # the reply (counted until 2 s)
    assert sendlog.prune(db, now=at(61)) == 1  # the first post (until 61 s)
    assert sendlog.counting(db, BOT, "-100", now=at(61)) == 1
    assert sendlog.prune(db, now=at(50 + 30 + 60)) == 1


def test_reserving_prunes_now_and_then(db: Database) -> None:
    first = sendlog.reserve(db, BOT, "-100", WINDOWS, now=at(0))
    assert isinstance(first, int)
    sendlog.finish(db, first, WINDOWS, now=at(0))
    assert isinstance(sendlog.reserve(db, BOT, "-200", WINDOWS, now=at(200)), int)
    assert sendlog.prune(db, now=at(200)) == 0  # the reservation at 200 s removed the old one already


def test_concurrent_workers_never_take_more_than_the_window(db_url: str) -> None:
    """Eight threads on four engines racing for one chat's three places: three get one."""
    databases = [open_database(db_url, migrate=n == 0) for n in range(4)]
    got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def racer(db: Database) -> None:
        start.wait()
        for _ in range(3):
            result = sendlog.reserve(db, BOT, "-100", WINDOWS)
            if isinstance(result, int):
                with lock:
                    got.append(result)

    threads = [threading.Thread(target=racer, args=(databases[n % 4],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for db in databases:
        db.dispose()
    assert len(got) == 3


def test_on_the_databases_own_clock_a_finished_request_counts_one_window(db: Database) -> None:
    reply = sendlog.reserve(db, BOT, None, WINDOWS)
    post = sendlog.reserve(db, BOT, "-100", WINDOWS)
    assert isinstance(reply, int) and isinstance(post, int)
    sendlog.finish(db, reply, WINDOWS)
    sendlog.finish(db, post, WINDOWS)
    later = datetime.now(UTC)
    assert sendlog.counting(db, BOT, now=later) == 2 and sendlog.counting(db, BOT, "-100", now=later) == 1
    assert sendlog.counting(db, BOT, now=later + timedelta(seconds=1)) == 0  # answered before `later`
    assert sendlog.counting(db, BOT, "-100", now=later + timedelta(seconds=59)) == 1
    assert sendlog.counting(db, BOT, "-100", now=later + timedelta(seconds=60)) == 0
