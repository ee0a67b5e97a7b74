"""Send windows shared by every worker of a bot: each request let through is one reservation row.

Telegram counts a bot's messages, not a process's: several workers on one database must keep
its limits together. A reservation counts in its chat's window and in the global one from the
moment it is made until a whole window after ``finish`` (when the request was answered), the
same rule as bot.ratelimit's in-memory windows. One that is never finished (its worker died)
counts only until ``Windows.in_flight_for`` after it was made, plus a window: by then any
request it let through has been answered or given up.

Counting and inserting are one step: every reservation of a bot first locks the bot's row in
send_windows (an UPDATE: a row lock on PostgreSQL, SQLite's write lock there), so two workers
never both take the last room in a window. Times are the database's clock on PostgreSQL
(workers on several hosts share it), the local clock on SQLite (one host).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.types import Interval, String

from digests.clock import utcnow
from digests.store.db import Database
from digests.store.models import SendReservation, SendWindow, UTCDateTime

PRUNE_EVERY = timedelta(seconds=60)  # how often a reservation also deletes the rows that count no more


@dataclass(frozen=True, slots=True)
class Windows:
    """The limits a reservation must fit: ``chat_rate`` per ``chat_window`` in one chat, and overall."""

    chat_rate: int
    overall_rate: int
    in_flight_for: timedelta  # an unfinished reservation counts this long at most, plus a window
    chat_window: timedelta = timedelta(seconds=60)
    overall_window: timedelta = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Full:
    """No room now: seconds until the chat's window and the global one may have some (0: it has)."""

    chat_wait: float
    overall_wait: float


# Every send runs these, so they are built once and run on a plain connection: building a
# statement and going through the ORM session cost several times what the database does here.
_R = cast(Any, SendReservation.__table__).c
_W = cast(Any, SendWindow.__table__).c
_NOW = bindparam("now", type_=UTCDateTime())
_CHAT = bindparam("chat", type_=String())
_DB_CLOCK = func.clock_timestamp(type_=UTCDateTime())

_LOCK = update(SendWindow).where(_W.bot_key == bindparam("key")).values(touched_at=bindparam("touched"))
_LOCK_SQLITE = _LOCK.returning(_W.pruned_at)
_LOCK_PG = _LOCK.returning(_W.pruned_at, _DB_CLOCK)
_STAMP_PRUNED = update(SendWindow).where(_W.bot_key == bindparam("key")).values(pruned_at=_NOW)

_IN_CHAT = and_(_R.chat == _CHAT, _R.chat_until > _NOW)
_IN_OVERALL = _R.overall_until > _NOW
_COUNTS = (select(func.count().filter(_IN_CHAT), func.count().filter(_IN_OVERALL))
           .where(_R.bot_key == bindparam("key"), or_(_IN_OVERALL, _IN_CHAT)))
# The first to stop counting, oldest first (unfinished ones stop last: their *_until is far off).
_NEXT_IN_CHAT = (select(_R.done_at, _R.chat_until).where(_R.bot_key == bindparam("key"), _IN_CHAT)
                 .order_by(_R.chat_until).limit(bindparam("needed")))
_NEXT_OVERALL = (select(_R.done_at, _R.overall_until).where(_R.bot_key == bindparam("key"), _IN_OVERALL)
                 .order_by(_R.overall_until).limit(bindparam("needed")))
_RESERVE = insert(SendReservation).returning(_R.id)
_FINISH = update(SendReservation).where(_R.id == bindparam("rid")).values(
    done_at=_NOW, overall_until=bindparam("overall_until", type_=UTCDateTime()),
    chat_until=case((_R.chat.is_(None), None), else_=bindparam("chat_until", type_=UTCDateTime())))
# On PostgreSQL in one statement, on the server's clock.
_FINISH_PG = update(SendReservation).where(_R.id == bindparam("rid")).values(
    done_at=_DB_CLOCK, overall_until=_DB_CLOCK + bindparam("overall_window", type_=Interval()),
    chat_until=case((_R.chat.is_(None), None), else_=_DB_CLOCK + bindparam("chat_window", type_=Interval())))
_CANCEL = delete(SendReservation).where(_R.id == bindparam("rid"))
_PRUNE = delete(SendReservation).where(_R.overall_until <= _NOW, or_(_R.chat_until.is_(None), _R.chat_until <= _NOW))


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount or 0


def _now(conn: Connection) -> datetime:
    """The clock every worker shares: the server's on PostgreSQL, the local one on SQLite (one host)."""
    if conn.dialect.name == "postgresql":
        moment = conn.scalar(select(_DB_CLOCK))
        assert moment is not None
        return moment
    return utcnow()


def _lock(conn: Connection, bot_key: str) -> tuple[datetime, datetime]:
    """Lock the bot's send_windows row until the transaction ends (created on first use): (pruned_at, now)."""
    postgres = conn.dialect.name == "postgresql"
    params = {"key": bot_key, "touched": utcnow()}
    row = conn.execute(_LOCK_PG if postgres else _LOCK_SQLITE, params).first()
    if row is None:
        make_insert = pg_insert if postgres else sqlite_insert
        first = utcnow()
        conn.execute(make_insert(SendWindow).values(bot_key=bot_key, touched_at=first, pruned_at=first)
                     .on_conflict_do_nothing(index_elements=["bot_key"]))
        row = conn.execute(_LOCK_PG if postgres else _LOCK_SQLITE, params).one()
    return row[0], row[1] if postgres else utcnow()


def _wait(conn: Connection, query: Any, count: int, rate: int, window: timedelta, now: datetime,
          **params: Any) -> float:
    """Seconds until one more reservation fits a window where ``count`` count now (0: it fits)."""
    if count < rate:
        return 0.0
    # The (count - rate + 1)-th to stop counting makes room. When that is an unfinished one, look
    # again soon: it will count a window after its answer, or it was cancelled.
    done_at, until = conn.execute(query, {**params, "now": now, "needed": count - rate + 1}).all()[-1]
    if done_at is None:
        return window.total_seconds() / 20
    return max(0.001, (until - now).total_seconds())


def reserve(db: Database, bot_key: str, chat: str | None, windows: Windows, *,
            now: datetime | None = None) -> int | Full:
    """Reserve room for one request to ``chat`` (None: the global window only); its id, or how long to wait."""
    with db.engine.begin() as conn:
        pruned_at, clock = _lock(conn, bot_key)
        now = now or clock
        if pruned_at <= now - PRUNE_EVERY:
            conn.execute(_PRUNE, {"now": now})
            conn.execute(_STAMP_PRUNED, {"key": bot_key, "now": now})
        in_chat, overall = conn.execute(_COUNTS, {"key": bot_key, "chat": chat, "now": now}).one()
        chat_wait = 0.0 if chat is None else _wait(conn, _NEXT_IN_CHAT, in_chat, windows.chat_rate,
                                                  windows.chat_window, now, key=bot_key, chat=chat)
        overall_wait = _wait(conn, _NEXT_OVERALL, overall, windows.overall_rate, windows.overall_window, now,
                             key=bot_key)
        if chat_wait > 0 or overall_wait > 0:
            return Full(chat_wait, overall_wait)
        counted_for = now + windows.in_flight_for
        reservation_id = conn.scalar(_RESERVE, {
            "bot_key": bot_key, "chat": chat, "reserved_at": now, "done_at": None,
            "chat_until": None if chat is None else counted_for + windows.chat_window,
            "overall_until": counted_for + windows.overall_window,
        })
        assert reservation_id is not None
        return int(reservation_id)


def finish(db: Database, reservation_id: int, windows: Windows, *, now: datetime | None = None) -> None:
    """The reserved request was answered (or failed): it counts for a whole window from now."""
    with db.engine.begin() as conn:
        if now is None and conn.dialect.name == "postgresql":
            conn.execute(_FINISH_PG, {"rid": reservation_id, "chat_window": windows.chat_window,
                                      "overall_window": windows.overall_window})
            return
        now = now or _now(conn)
        conn.execute(_FINISH, {"rid": reservation_id, "now": now, "chat_until": now + windows.chat_window,
                               "overall_until": now + windows.overall_window})


def cancel(db: Database, reservation_id: int) -> None:
    """Nothing was sent under this reservation: the room it took is free again."""
    with db.engine.begin() as conn:
        conn.execute(_CANCEL, {"rid": reservation_id})


def prune(db: Database, *, now: datetime | None = None) -> int:
    """Delete the reservations that count in no window any more, of every bot; how many."""
    with db.engine.begin() as conn:
        return _rowcount(conn.execute(_PRUNE, {"now": now or _now(conn)}))


def counting(db: Database, bot_key: str, chat: str | None = None, *, now: datetime | None = None) -> int:
    """How many reservations count now in the chat's window (None: in the global one)."""
    with db.engine.begin() as conn:
        in_chat, overall = conn.execute(_COUNTS, {"key": bot_key, "chat": chat, "now": now or _now(conn)}).one()
        return int(overall if chat is None else in_chat)
